import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// A custom transport over an in-memory pair that misbehaves at one I/O call: the
/// fault-injection rows of issue 7, for every call index of a handshake.
final class FaultyTransport: TLSCustomTransport {
    enum Fault: String, CustomStringConvertible {
        /// Call `index` says would-block once; every other call goes through.
        case wouldBlockOnce
        /// From call `index` on, at most one byte per read and per write.
        case oneByteAtATime
        /// Call `index` fails: reads with ECONNRESET, writes with EPIPE.
        case fail
        /// From call `index` on the stream is closed: reads see end-of-stream, writes
        /// fail with EPIPE (what a socket whose peer is gone does).
        case close
        var description: String { rawValue }
    }
    enum Kind: Equatable { case read, write }

    let wire: TLSMemoryPair
    let fault: Fault?
    let index: Int
    /// The kind of every transport call, in order.
    private(set) var calls: [Kind] = []
    /// The kind of call the fault hit, once it did.
    private(set) var injected: Kind?

    init(_ wire: TLSMemoryPair, fault: Fault?, at index: Int) {
        self.wire = wire
        self.fault = fault
        self.index = index
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        let call = calls.count
        calls.append(.read)
        if let fault, call >= index {
            if call == index { injected = .read }
            switch fault {
            case .wouldBlockOnce where call == index: return .wouldBlock
            case .wouldBlockOnce: break
            case .oneByteAtATime: return wire.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(1)))
            case .fail where call == index: return .failed(errno: ECONNRESET)
            case .fail: break
            case .close: return .endOfStream
            }
        }
        return wire.read(into: buffer)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        let call = calls.count
        calls.append(.write)
        if let fault, call >= index {
            if call == index { injected = .write }
            switch fault {
            case .wouldBlockOnce where call == index: return .wouldBlock
            case .wouldBlockOnce: break
            case .oneByteAtATime: return wire.write(UnsafeRawBufferPointer(rebasing: bytes.prefix(1)))
            case .fail where call == index: return .failed(errno: EPIPE)
            case .fail: break
            case .close: return .failed(errno: EPIPE)
            }
        }
        return wire.write(bytes)
    }
}

/// Fault injection through ``TLSCustomTransport``: for every I/O call index of a
/// handshake, on each role, TLS 1.3 and 1.2, the faulty side's results are exact.
@Suite("Fault injection", .timeLimit(.minutes(5)), .sharesProcess)
struct FaultInjectionTests {
    struct Run {
        /// Every step of the faulty side, in order.
        var steps: [Step] = []
        var peerLast: Step?
        var transport: FaultyTransport
        var connection: TLSConnection
        var peer: TLSConnection
        var peerWire: TLSMemoryPair
    }

    /// Drives a handshake where `role`'s side uses a faulty transport. Stops when both
    /// sides finished, or the faulty side ended (anything but want-read/want-write).
    static func run(_ fixture: Fixture, contexts: (client: TLSContext, server: TLSContext), role: TLSRole,
                    fault: FaultyTransport.Fault?, at index: Int) throws -> Run {
        let faultyWire = TLSMemoryPair(), peerWire = TLSMemoryPair()
        let transport = FaultyTransport(faultyWire, fault: fault, at: index)
        let faulty = (role == .client ? contexts.client : contexts.server).makeConnection()
        let peer = (role == .client ? contexts.server : contexts.client).makeConnection()
        try faulty.setTransport(.custom(transport))
        try peer.setTransport(.memory(peerWire))
        if role == .client { try faulty.setConnectState(); try peer.setAcceptState() }
        else { try faulty.setAcceptState(); try peer.setConnectState() }
        var run = Run(transport: transport, connection: faulty, peer: peer, peerWire: peerWire)
        func ended(_ step: Step?) -> Bool {
            guard let step else { return false }
            return step.result != -1 || !(step.code == .wantRead || step.code == .wantWrite)
        }
        // Client first: it speaks first.
        let order: [TLSConnection] = role == .client ? [faulty, peer] : [peer, faulty]
        for _ in 0..<20_000 {
            if ended(run.steps.last) && (ended(run.peerLast) || run.steps.last?.result != 1) { break }
            for connection in order {
                if connection === faulty {
                    if !ended(run.steps.last) { run.steps.append(faulty.step { $0.doHandshake() }) }
                } else if !ended(run.peerLast) {
                    run.peerLast = peer.step { $0.doHandshake() }
                }
                TLSMemoryPair.exchange(faultyWire, peerWire)
            }
        }
        return run
    }

    static let cases: [(TLSRole, TLSVersion)] = [(.client, .tls13), (.server, .tls13), (.client, .tls12), (.server, .tls12)]

    @Test("every I/O call index, every fault, both roles, TLS 1.3 and 1.2: exact results", arguments: allBackends)
    func everyCallIndex(backend: Backend) throws {
        let fixture = try Fixture(backend)
        for (role, version) in Self.cases {
            let contexts = (client: try fixture.clientContext { $0.maximumTLSVersion = version },
                            server: try fixture.serverContext { $0.maximumTLSVersion = version })
            let label = "\(role) \(version)"
            // The clean run: how many transport calls the faulty side makes.
            let baseline = try Self.run(fixture, contexts: contexts, role: role, fault: nil, at: 0)
            try #require(baseline.steps.last == Step(1, .none), "\(label): clean handshake \(baseline.steps)")
            try #require(baseline.peerLast == Step(1, .none), "\(label)")
            let count = baseline.transport.calls.count
            #expect(count >= 2, "\(label): \(count) transport calls")

            for index in 0..<count {
                let where_ = "\(label), call \(index) of \(count)"
                // (a) would-block once at i: -1 with the direction of that call, then done.
                let blocked = try Self.run(fixture, contexts: contexts, role: role, fault: .wouldBlockOnce, at: index)
                let kind = try #require(blocked.transport.injected, "\(where_): fault not reached")
                #expect(blocked.steps.last == Step(1, .none), "\(where_) wouldBlockOnce: \(blocked.steps)")
                #expect(blocked.peerLast == Step(1, .none), "\(where_) wouldBlockOnce peer")
                #expect(blocked.steps.contains(Step(-1, kind == .read ? .wantRead : .wantWrite)),
                        "\(where_) wouldBlockOnce on a \(kind): \(blocked.steps)")
                #expect(blocked.steps.dropLast().allSatisfy { $0.result == -1 && ($0.code == .wantRead || $0.code == .wantWrite) })

                // (b) one byte at a time from i: the handshake completes.
                let trickle = try Self.run(fixture, contexts: contexts, role: role, fault: .oneByteAtATime, at: index)
                #expect(trickle.steps.last == Step(1, .none), "\(where_) oneByteAtATime: \(trickle.steps.suffix(3))")
                #expect(trickle.peerLast == Step(1, .none), "\(where_) oneByteAtATime peer")
                #expect(trickle.connection.negotiatedVersion == version)

                // (c) an error at i: -1 .syscall with that errno, sticky.
                let failed = try Self.run(fixture, contexts: contexts, role: role, fault: .fail, at: index)
                let failedKind = try #require(failed.transport.injected, "\(where_): fault not reached")
                #expect(failed.steps.last == Step(-1, .syscall), "\(where_) fail: \(failed.steps)")
                #expect(failed.connection.lastError?.code == .transportFailure)
                #expect(failed.connection.lastError?.errno == (failedKind == .read ? ECONNRESET : EPIPE), "\(where_)")
                let callsBefore = failed.transport.calls.count
                #expect(failed.connection.step { $0.doHandshake() } == Step(-1, .syscall))
                #expect(failed.connection.lastError?.errno == (failedKind == .read ? ECONNRESET : EPIPE))
                #expect(failed.transport.calls.count == callsBefore, "\(where_): a dead connection used its transport")

                // (d) end of stream at i: a read sees it as -1 .ssl unexpectedEOF (never
                // 0 .zeroReturn: no close_notify came); a write fails like a socket, EPIPE.
                let closed = try Self.run(fixture, contexts: contexts, role: role, fault: .close, at: index)
                let closedKind = try #require(closed.transport.injected, "\(where_): fault not reached")
                switch closedKind {
                case .read:
                    #expect(closed.steps.last == Step(-1, .ssl), "\(where_) close on a read: \(closed.steps)")
                    #expect(closed.connection.lastError?.code == .unexpectedEOF, "\(where_): \(String(describing: closed.connection.lastError))")
                case .write:
                    #expect(closed.steps.last == Step(-1, .syscall), "\(where_) close on a write: \(closed.steps)")
                    #expect(closed.connection.lastError?.errno == EPIPE)
                }
                #expect(!closed.steps.contains { $0.code == .zeroReturn })
            }
        }
    }

    @Test("application data through a transport that moves one byte per call, both ways", arguments: allBackends)
    func dataOneByteAtATime(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let contexts = (client: try fixture.clientContext(), server: try fixture.serverContext())
        for role in [TLSRole.client, .server] {
            let run = try Self.run(fixture, contexts: contexts, role: role, fault: .oneByteAtATime, at: 0)
            try #require(run.steps.last == Step(1, .none))
            let faulty = run.connection
            let peer = run.peer
            let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
            // The library loops over one-byte transport writes inside the call (or returns
            // -1 .wantWrite and resumes): either way the write ends with the full length.
            var result = faulty.step { $0.write(payload) }
            for _ in 0..<100 where result.result < 0 {
                #expect(result == Step(-1, .wantWrite))
                result = faulty.step { $0.write(payload) }
            }
            #expect(result == Step(3000, .none), "\(role)")
            TLSMemoryPair.exchange(run.transport.wire, run.peerWire)
            var received: [UInt8] = []
            for _ in 0..<100 where received.count < payload.count {
                let (step, bytes) = peer.readStep()
                if step.result <= 0 { #expect(step == Step(-1, .wantRead)); break }
                received += bytes
            }
            #expect(received == payload, "\(role)")
            // And back: the peer's reply arrives one byte per transport read.
            #expect(peer.step { $0.write(Array("reply".utf8)) } == Step(5, .none))
            TLSMemoryPair.exchange(run.transport.wire, run.peerWire)
            var reply: [UInt8] = []
            for _ in 0..<100 where reply.count < 5 {
                let (step, bytes) = faulty.readStep()
                if step.result <= 0 { #expect(step == Step(-1, .wantRead)); continue }
                reply += bytes
            }
            #expect(reply == Array("reply".utf8), "\(role)")
        }
    }
}

/// A peer that stalls: the blocking helpers give up with `.timedOut` within their
/// time-out, on both roles.
@Suite("Stalled peer", .timeLimit(.minutes(5)), .sharesProcess)
struct StalledPeerTests {
    static let timeout = Duration.milliseconds(800)

    /// Runs `body` and returns the TLSError it threw and how long it took.
    static func timed(_ body: () throws -> Void) -> (TLSError?, Duration) {
        let start = ContinuousClock.now
        do { try body() } catch let error as TLSError { return (error, ContinuousClock.now - start) }
        catch { return (TLSError(.internalError, "\(error)", backend: "tests"), ContinuousClock.now - start) }
        return (nil, ContinuousClock.now - start)
    }

    static func expectTimedOut(_ outcome: (TLSError?, Duration), _ what: String) {
        #expect(outcome.0?.code == .timedOut, "\(what): \(String(describing: outcome.0))")
        // It waited at least the time-out, and gave up (the upper bound is only a hang guard).
        #expect(outcome.1 >= timeout, "\(what): gave up after \(outcome.1)")
        #expect(outcome.1 < timeout + .seconds(20), "\(what): took \(outcome.1)")
    }

    @Test("a server that accepts TCP and never speaks: connect throws .timedOut", arguments: allBackends)
    func silentServer(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let context = try fixture.clientContext()
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let accepted = Background { try listener.acceptDescriptor(timeout: .seconds(20)) }
        let outcome = Self.timed {
            _ = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: context,
                                      serverName: "localhost", timeout: Self.timeout)
        }
        Self.expectTimedOut(outcome, "connect")
        close(try accepted.join())
    }

    @Test("a client that connects and never speaks: accept throws .timedOut", arguments: allBackends)
    func silentClient(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let context = try fixture.serverContext()
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listener.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0)
        Self.expectTimedOut(Self.timed { _ = try listener.accept(context: context, timeout: Self.timeout) }, "accept")
        // No TCP client at all: accept itself times out.
        Self.expectTimedOut(Self.timed { _ = try listener.accept(context: context, timeout: Self.timeout) }, "accept (no client)")
    }

    @Test("a peer that stops mid-handshake: connect and accept throw .timedOut", arguments: allBackends)
    func midHandshake(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let clientContext = try fixture.clientContext(), serverContext = try fixture.serverContext()

        // Client side: the "server" reads the ClientHello, then sends half a record header's
        // worth of a handshake record and stops.
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let fake = Background { () -> Int32 in
            let fd = try listener.acceptDescriptor(timeout: .seconds(20))
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, 10_000)
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = recv(fd, &buffer, buffer.count, 0)
            let partial: [UInt8] = [0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00, 0x00]
            _ = send(fd, partial, partial.count, Int32(MSG_NOSIGNAL))
            return fd
        }
        Self.expectTimedOut(Self.timed {
            _ = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                      serverName: "localhost", timeout: Self.timeout)
        }, "connect mid-handshake")
        close(try fake.join())

        // Server side: the client sends its real ClientHello (from an in-memory client),
        // then stops before its second flight.
        let memoryClient = clientContext.makeConnection()
        let wire = TLSMemoryPair()
        try memoryClient.setTransport(.memory(wire))
        #expect(memoryClient.step { $0.connect() } == Step(-1, .wantRead))
        let hello = wire.takeOutgoing()
        let (mine, theirs) = try socketPair()
        defer { close(mine) }
        #expect(send(mine, hello, hello.count, Int32(MSG_NOSIGNAL)) == hello.count)
        Self.expectTimedOut(Self.timed {
            _ = try TLSSocket.accept(descriptor: theirs, context: serverContext, timeout: Self.timeout)
        }, "accept mid-handshake")
    }

    @Test("a peer that stops mid-read (nothing, or half a record): read throws .timedOut", arguments: allBackends)
    func midRead(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext(), clientContext = try fixture.clientContext()
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let partialSent = DispatchSemaphore(value: 0), clientDone = DispatchSemaphore(value: 0)
        let server = Background { () -> (TLSError?, Duration) in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(20))
            // The server waits for a client that never writes.
            socket.timeout = Self.timeout
            let outcome = Self.timed { _ = try socket.read() }
            // Then the start of an application-data record, and nothing more.
            let partial: [UInt8] = [0x17, 0x03, 0x03, 0x00, 0x30, 1, 2, 3, 4]
            _ = send(socket.descriptor, partial, partial.count, Int32(MSG_NOSIGNAL))
            partialSent.signal()
            _ = clientDone.wait(timeout: .now() + 30)
            return outcome
        }
        // The connect is not what is measured: a long time-out, so that a loaded machine
        // cannot turn a slow handshake into .timedOut; the short one is armed for the reads.
        // 60 s, past expectTimedOut's hang guard and the server's 30 s wait: a read that
        // kept the connect's time-out instead of the one set here would fail, not pass slowly.
        let client = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                           serverName: "localhost", timeout: .seconds(60))
        client.timeout = Self.timeout
        Self.expectTimedOut(Self.timed { _ = try client.read() }, "read, silent peer")
        #expect(partialSent.wait(timeout: .now() + 30) == .success)
        Self.expectTimedOut(Self.timed { _ = try client.read() }, "read, half a record")
        clientDone.signal()
        Self.expectTimedOut(try server.join(), "server read")
    }
}
