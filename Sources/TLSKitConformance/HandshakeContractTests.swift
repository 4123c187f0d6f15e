import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

/// The rows of Docs/contract.md, "What each result means" › "Handshake: `connect()`,
/// `accept()`, `doHandshake()`", in memory, asserted exactly on every backend.
struct HandshakeContractTests {
    func noTransport(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let client = try fixture.clientContext().makeConnection()
        let server = try fixture.serverContext().makeConnection()
        for _ in 0..<3 {
            #expect(client.step { $0.connect() } == Step(-1, .ssl))
            #expect(client.lastError?.code == .noTransport)
            #expect(client.lastError?.backend == backend.id)
            #expect(server.step { $0.accept() } == Step(-1, .ssl))
            #expect(server.lastError?.code == .noTransport)
        }
        // Not fatal: attaching the transport afterwards lets the handshake run.
        let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
        try client.setTransport(.memory(clientWire))
        try server.setTransport(.memory(serverWire))
        var done = (client: false, server: false)
        for _ in 0..<20 where !(done.client && done.server) {
            if !done.client { done.client = client.connect() == 1 }
            TLSMemoryPair.exchange(clientWire, serverWire)
            if !done.server { done.server = server.accept() == 1 }
            TLSMemoryPair.exchange(clientWire, serverWire)
        }
        #expect(done.client && done.server)
    }

    func roleNotSet(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let connection = try fixture.clientContext().makeConnection()
        try connection.setTransport(.memory(TLSMemoryPair()))
        #expect(connection.step { $0.doHandshake() } == Step(-1, .ssl))
        #expect(connection.lastError?.code == .roleNotSet)
        #expect(connection.step { $0.doHandshake() } == Step(-1, .ssl))
        try connection.setConnectState()
        #expect(connection.step { $0.doHandshake() } == Step(-1, .wantRead))
    }

    func inMemoryHandshake(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let link = try MemoryLink(fixture, client: { $0.maximumTLSVersion = version }, server: { $0.maximumTLSVersion = version })
        // The client speaks first: its first call writes the ClientHello and waits.
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        #expect(link.clientWire.pendingOutgoing > 0)
        // The server has nothing to read yet.
        #expect(link.server.step { $0.accept() } == Step(-1, .wantRead))
        #expect(link.serverWire.pendingOutgoing == 0)
        let (clientSteps, serverSteps) = link.handshake()
        // Every step before the last is a want-read (buffers are large: never want-write),
        // and the last is success; the order is exact, the count is the library's.
        for steps in [clientSteps, serverSteps] {
            #expect(steps.last == Step(1, .none))
            #expect(steps.dropLast().allSatisfy { $0 == Step(-1, .wantRead) })
        }
        #expect(link.client.negotiatedVersion == version)
        #expect(link.server.negotiatedVersion == version)
        #expect(link.client.isHandshakeComplete && link.server.isHandshakeComplete)
    }

    func handshakeAgain(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        link.handshake()
        #expect(link.exchange() == 0)
        for connection in [link.client, link.server] {
            #expect(connection.step { $0.doHandshake() } == Step(1, .none))
        }
        #expect(link.client.step { $0.connect() } == Step(1, .none))
        #expect(link.server.step { $0.accept() } == Step(1, .none))
        #expect(link.clientWire.pendingOutgoing == 0)
        #expect(link.serverWire.pendingOutgoing == 0)
    }

    func wantWrite(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), capacity: 64)
        var sawWantWrite = false
        var done = (client: false, server: false)
        for _ in 0..<2000 where !(done.client && done.server) {
            if !done.client {
                let step = link.client.step { $0.connect() }
                if step == Step(-1, .wantWrite) { sawWantWrite = true }
                done.client = step == Step(1, .none)
                #expect(step == Step(1, .none) || step == Step(-1, .wantRead) || step == Step(-1, .wantWrite))
            }
            link.exchange()
            if !done.server {
                let step = link.server.step { $0.accept() }
                if step == Step(-1, .wantWrite) { sawWantWrite = true }
                done.server = step == Step(1, .none)
                #expect(step == Step(1, .none) || step == Step(-1, .wantRead) || step == Step(-1, .wantWrite))
            }
            link.exchange()
        }
        #expect(sawWantWrite)
        #expect(done.client && done.server)
    }

    func closeNotifyDuringHandshake(backend: Backend) throws {
        // A plaintext alert record: warning(1) close_notify(0).
        let closeNotify: [UInt8] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]
        let fixture = try Fixture(backend)

        let client = try fixture.clientContext().makeConnection()
        let clientWire = TLSMemoryPair()
        try client.setTransport(.memory(clientWire))
        #expect(client.step { $0.connect() } == Step(-1, .wantRead))
        clientWire.deliverIncoming(closeNotify)
        #expect(client.step { $0.connect() } == Step(0, .zeroReturn))
        #expect(client.step { $0.connect() } == Step(0, .zeroReturn))
        #expect(client.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(client.lastError?.code == .shutdownDuringHandshake)

        // The server: the client reads the server's flight, then closes instead of
        // finishing (TLS 1.2, where that alert is still plaintext).
        let link = try MemoryLink(fixture, client: { $0.maximumTLSVersion = .tls12 })
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        link.exchange()
        #expect(link.server.step { $0.accept() } == Step(-1, .wantRead))
        #expect(link.serverWire.pendingOutgoing > 0)
        link.serverWire.deliverIncoming(closeNotify)
        #expect(link.server.step { $0.accept() } == Step(0, .zeroReturn), "\(String(describing: link.server.lastError))")
        #expect(link.server.step { $0.accept() } == Step(0, .zeroReturn))
        #expect(link.server.step { $0.write([1]) } == Step(-1, .ssl))
    }

    func closeNotifyBeforeClientHello(backend: Backend) throws {
        let server = try Fixture(backend).serverContext().makeConnection()
        let wire = TLSMemoryPair()
        try server.setTransport(.memory(wire))
        wire.deliverIncoming([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00])
        #expect(server.step { $0.accept() } == Step(0, .zeroReturn), "\(String(describing: server.lastError))")
        #expect(server.step { $0.accept() } == Step(0, .zeroReturn))
    }

    func eofDuringHandshake(backend: Backend) throws {
        let fixture = try Fixture(backend)
        // EOF on a record boundary: right after the ClientHello.
        let link = try MemoryLink(fixture)
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        link.clientWire.closeIncoming()
        #expect(link.client.step { $0.connect() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .unexpectedEOF)
        #expect(link.client.step { $0.connect() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .unexpectedEOF)

        // EOF inside a record: the server gets 10 bytes of the ClientHello, then EOF.
        let partial = try MemoryLink(fixture)
        #expect(partial.client.step { $0.connect() } == Step(-1, .wantRead))
        let hello = partial.clientWire.takeOutgoing()
        partial.serverWire.deliverIncoming(hello.prefix(10))
        #expect(partial.server.step { $0.accept() } == Step(-1, .wantRead))
        partial.serverWire.closeIncoming()
        #expect(partial.server.step { $0.accept() } == Step(-1, .ssl))
        #expect(partial.server.lastError?.code == .unexpectedEOF)
    }

    func garbage(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        _ = link.clientWire.takeOutgoing()  // drop the real ClientHello
        link.serverWire.deliverIncoming(Array("GET / HTTP/1.1\r\nHost: example\r\n\r\n".utf8))
        #expect(link.server.step { $0.accept() } == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure)
        #expect(link.server.lastError?.backend == backend.id)
        // The server answered with a fatal alert record (content type 21).
        let answer = link.serverWire.takeOutgoing()
        #expect(answer.first == 0x15)
        #expect(answer.count >= 7 && answer[5] == 2)  // level: fatal
        // The same call again: the same result and the first error kept.
        let first = link.server.lastError
        #expect(link.server.step { $0.accept() } == Step(-1, .ssl))
        #expect(identical(link.server.lastError, first))
        #expect(link.server.step { $0.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0)) } == Step(-1, .ssl))
        // The client receives the alert: -1 .ssl alertReceived.
        link.clientWire.deliverIncoming(answer)
        #expect(link.client.step { $0.connect() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alertReceived)
        // Bytes that are no TLS record at all: unexpected_message, by name, on both ends.
        #expect(answer.count >= 7 && answer[6] == 10, "\(answer)")
        #expect(link.client.lastError?.alert == .unexpectedMessage, "\(String(describing: link.client.lastError))")
    }

    func transportError(backend: Backend) throws {
        final class Failing: TLSCustomTransport {
            func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult { .failed(errno: ECONNRESET) }
            func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult { .failed(errno: EPIPE) }
        }
        let fixture = try Fixture(backend)
        let client = try fixture.clientContext().makeConnection()
        try client.setTransport(.custom(Failing()))
        #expect(client.step { $0.connect() } == Step(-1, .syscall))
        #expect(client.lastError?.code == .transportFailure)
        #expect(client.lastError?.errno == EPIPE)
        #expect(client.step { $0.connect() } == Step(-1, .syscall))
        #expect(client.lastError?.errno == EPIPE)

        let server = try fixture.serverContext().makeConnection()
        try server.setTransport(.custom(Failing()))
        #expect(server.step { $0.accept() } == Step(-1, .syscall))
        #expect(server.lastError?.errno == ECONNRESET)
    }

    func customTransport(backend: Backend) throws {
        /// Blocks every other call, then forwards to an in-memory pair.
        final class Stuttering: TLSCustomTransport {
            let wire = TLSMemoryPair()
            var calls = 0
            func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
                calls += 1
                return calls % 2 == 0 ? .wouldBlock : wire.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(1)))
            }
            func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
                calls += 1
                return calls % 2 == 0 ? .wouldBlock : wire.write(bytes)
            }
        }
        let fixture = try Fixture(backend)
        let client = try fixture.clientContext().makeConnection()
        let server = try fixture.serverContext().makeConnection()
        let clientSide = Stuttering(), serverSide = Stuttering()
        try client.setTransport(.custom(clientSide))
        try server.setTransport(.custom(serverSide))
        var done = (client: false, server: false)
        var codes = Set<TLSResultCode>()
        for _ in 0..<20_000 where !(done.client && done.server) {
            if !done.client {
                let step = client.step { $0.connect() }
                done.client = step == Step(1, .none)
                if !done.client { codes.insert(step.code) }
            }
            if !done.server {
                let step = server.step { $0.accept() }
                done.server = step == Step(1, .none)
                if !done.server { codes.insert(step.code) }
            }
            TLSMemoryPair.exchange(clientSide.wire, serverSide.wire)
        }
        #expect(done.client && done.server)
        #expect(codes == [.wantRead, .wantWrite])
    }

    func misuse(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        let second = try #require(throws: TLSError.self) { try link.client.setTransport(.memory(TLSMemoryPair())) }
        #expect(second.code == .invalidState)
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        let roleChange = try #require(throws: TLSError.self) { try link.client.setAcceptState() }
        #expect(roleChange.code == .invalidState)
        #expect(roleChange.backend == backend.id)
        #expect(link.client.step { $0.accept() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .invalidState)
        // Shutdown mid-handshake is refused and sends nothing.
        let pending = link.clientWire.pendingOutgoing
        #expect(link.client.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .shutdownDuringHandshake)
        #expect(link.clientWire.pendingOutgoing == pending)
        // The handshake is not harmed by the refused calls.
        let (clientSteps, serverSteps) = link.handshake()
        #expect(clientSteps.last == Step(1, .none))
        #expect(serverSteps.last == Step(1, .none))
    }
}

extension HandshakeContractTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = [
        ConformanceRule("handshake.noTransport", "connect/accept with no transport: -1 .ssl noTransport, on every retry, both roles") { try HandshakeContractTests().noTransport(backend: $0) },
        ConformanceRule("handshake.roleNotSet", "doHandshake before a role is set: -1 .ssl roleNotSet") { try HandshakeContractTests().roleNotSet(backend: $0) },
        ConformanceRule("handshake.inMemoryHandshake[TLS 1.3]", "in-memory handshake: -1 .wantRead steps, then 1 .none on both sides, TLS 1.3 and 1.2", requires: [.tls13]) { try HandshakeContractTests().inMemoryHandshake(backend: $0, version: .tls13) },
        ConformanceRule("handshake.inMemoryHandshake[TLS 1.2]", "in-memory handshake: -1 .wantRead steps, then 1 .none on both sides, TLS 1.3 and 1.2") { try HandshakeContractTests().inMemoryHandshake(backend: $0, version: .tls12) },
        ConformanceRule("handshake.handshakeAgain", "handshake again after success: 1 .none and nothing is sent") { try HandshakeContractTests().handshakeAgain(backend: $0) },
        ConformanceRule("handshake.wantWrite", "a small transport buffer gives -1 .wantWrite; draining it resumes the handshake") { try HandshakeContractTests().wantWrite(backend: $0) },
        ConformanceRule("handshake.closeNotifyDuringHandshake", "peer sends close_notify during the handshake: 0 .zeroReturn (the manual), sticky, both roles") { try HandshakeContractTests().closeNotifyDuringHandshake(backend: $0) },
        ConformanceRule("handshake.closeNotifyBeforeClientHello", "close_notify as the very first record, before any ClientHello: 0 .zeroReturn") { try HandshakeContractTests().closeNotifyBeforeClientHello(backend: $0) },
        ConformanceRule("handshake.eofDuringHandshake", "transport EOF during the handshake: -1 .ssl unexpectedEOF, also inside a partial record") { try HandshakeContractTests().eofDuringHandshake(backend: $0) },
        ConformanceRule("handshake.garbage", "garbage from the peer: -1 .ssl, a fatal alert is sent back, and the peer reports it") { try HandshakeContractTests().garbage(backend: $0) },
        ConformanceRule("handshake.transportError", "transport error during the handshake: -1 .syscall with errno, sticky") { try HandshakeContractTests().transportError(backend: $0) },
        ConformanceRule("handshake.customTransport", "a custom transport that says would-block gives want-read/want-write and resumes") { try HandshakeContractTests().customTransport(backend: $0) },
        ConformanceRule("handshake.misuse", "misuse: transport twice, role change after start, shutdown during the handshake") { try HandshakeContractTests().misuse(backend: $0) },
    ]
}
