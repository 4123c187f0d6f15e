import Foundation
import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

/// The contract over real descriptors: blocking, non-blocking with poll, loopback TCP.
struct SocketTests {
    func blockingSocketPair(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let clientContext = try fixture.clientContext()
        let (clientFD, serverFD) = try socketPair()
        defer { close(clientFD); close(serverFD) }
        let server = Background { () -> [Step] in
            let connection = serverContext.makeConnection()
            try connection.setTransport(.socket(serverFD))
            var steps = [connection.step { $0.accept() }]
            var buffer = [UInt8](repeating: 0, count: 100)
            let count = connection.read(into: &buffer)
            steps.append(Step(count, connection.error(for: count)))
            steps.append(connection.step { $0.write(Array(buffer[0..<max(0, Int(count))])) })
            steps.append(connection.step { $0.shutdown() })
            steps.append(connection.step { $0.shutdown() })
            return steps
        }
        let client = clientContext.makeConnection()
        try client.setTransport(.socket(clientFD))
        #expect(client.step { $0.connect() } == Step(1, .none))
        #expect(client.step { $0.write(Array("hello".utf8)) } == Step(5, .none))
        let (step, echo) = client.readStep()
        #expect(step == Step(5, .none))
        #expect(echo == Array("hello".utf8))
        // The server shut down first: we read 0 .zeroReturn, then our shutdown completes at once.
        #expect(client.readStep().0 == Step(0, .zeroReturn))
        #expect(client.step { $0.shutdown() } == Step(1, .none))
        let serverSteps = try server.join()
        #expect(serverSteps == [Step(1, .none), Step(5, .none), Step(5, .none), Step(0, .none), Step(1, .none)])
    }

    func nonBlockingPollLoop(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let (clientFD, serverFD) = try socketPair(nonBlocking: true)
        defer { close(clientFD); close(serverFD) }
        // Small kernel buffers so the server's flight cannot be written in one go.
        var size: Int32 = 2048
        setsockopt(serverFD, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(clientFD, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let client = try fixture.clientContext().makeConnection()
        let server = try fixture.serverContext().makeConnection()
        try client.setTransport(.socket(clientFD))
        try server.setTransport(.socket(serverFD))
        var last = (client: Step(-1, .wantRead), server: Step(-1, .wantRead))
        var seen = Set<TLSResultCode>()
        for _ in 0..<10_000 where !(last.client.result == 1 && last.server.result == 1) {
            if last.client.result != 1 { last.client = client.step { $0.connect() } }
            if last.server.result != 1 { last.server = server.step { $0.accept() } }
            for step in [last.client, last.server] where step.result != 1 {
                #expect(step.result == -1 && (step.code == .wantRead || step.code == .wantWrite), "got \(step)")
                seen.insert(step.code)
            }
            var fds = [
                pollfd(fd: clientFD, events: Int16(last.client.code == .wantWrite ? POLLOUT : POLLIN), revents: 0),
                pollfd(fd: serverFD, events: Int16(last.server.code == .wantWrite ? POLLOUT : POLLIN), revents: 0),
            ]
            _ = poll(&fds, 2, 50)
        }
        #expect(last.client == Step(1, .none))
        #expect(last.server == Step(1, .none))
        #expect(seen.contains(.wantRead))
        // Data over the non-blocking pair.
        #expect(server.step { $0.write(Array("data".utf8)) } == Step(4, .none))
        var polled = pollfd(fd: clientFD, events: Int16(POLLIN), revents: 0)
        _ = poll(&polled, 1, 1000)
        var got: [UInt8] = []
        for _ in 0..<100 where got.isEmpty {
            let (step, bytes) = client.readStep()
            if step.result > 0 { got = bytes } else { #expect(step == Step(-1, .wantRead)); _ = poll(&polled, 1, 100) }
        }
        #expect(got == Array("data".utf8))
    }

    func loopbackTCP(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext { $0.maximumTLSVersion = version }
        let clientContext = try fixture.clientContext()
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let server = Background { () -> String? in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(20))
            let request = try socket.read()
            try socket.write(Array("echo:".utf8) + request)
            try socket.shutdown(waitForPeer: true)
            return socket.connection.requestedServerName
        }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                           serverName: "localhost", timeout: .seconds(20))
        #expect(socket.connection.negotiatedVersion == version)
        #expect(socket.connection.peerVerification == .verified)
        try socket.write(Array("abc".utf8))
        var reply: [UInt8] = []
        for _ in 0..<1000 {
            let chunk = try socket.read()
            if chunk.isEmpty { break }
            reply += chunk
        }
        #expect(reply == Array("echo:abc".utf8))
        try socket.shutdown()
        #expect(try server.join() == "localhost")
    }

    func ipv6(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let clientContext = try fixture.clientContext { $0.serverName = nil }
        let listener = try TLSListener(host: "::1", port: 0)
        let server = Background { () -> String? in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(20))
            try socket.shutdown()
            return socket.connection.requestedServerName
        }
        let socket = try TLSSocket.connect(host: "[::1]", port: listener.port, context: clientContext, timeout: .seconds(20))
        #expect(socket.connection.peerVerification == .verified)
        #expect(try socket.read() == [])
        #expect(try server.join() == nil)  // IP literals are never sent as SNI
    }

    func peerSocketGone(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let (clientFD, serverFD) = try socketPair()
        defer { close(clientFD) }
        let server = Background { () -> Step in
            let connection = serverContext.makeConnection()
            try connection.setTransport(.socket(serverFD))
            let step = connection.step { $0.accept() }
            close(serverFD)
            return step
        }
        let client = try fixture.clientContext().makeConnection()
        try client.setTransport(.socket(clientFD))
        #expect(client.step { $0.connect() } == Step(1, .none))
        #expect(try server.join() == Step(1, .none))
        var step = Step(1, .none)
        let chunk = [UInt8](repeating: 0, count: 16_384)
        for _ in 0..<100 where step.result > 0 { step = client.step { $0.write(chunk) } }
        #expect(step == Step(-1, .syscall))
        #expect(client.lastError?.errno == EPIPE || client.lastError?.errno == ECONNRESET)
    }

    func closedDescriptor(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let client = try fixture.clientContext().makeConnection()
        try client.setTransport(.socket(try makeClosedDescriptor()))
        #expect(client.step { $0.connect() } == Step(-1, .syscall))
        #expect(client.lastError?.errno == EBADF)
    }

    func sharedContext(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let clientContext = try fixture.clientContext()
        let workers = (0..<8).map { _ in
            Background { () -> Int in
                var completed = 0
                for _ in 0..<10 {
                    let link = try MemoryLink(client: clientContext, server: serverContext)
                    let (c, s) = link.handshake()
                    if c.last == Step(1, .none) && s.last == Step(1, .none) { completed += 1 }
                }
                return completed
            }
        }
        let total = try workers.reduce(0) { $0 + (try $1.join()) }
        #expect(total == 80)
    }
}

extension SocketTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = [
        ConformanceRule("socket.blockingSocketPair", "blocking socket pair: connect and accept each return 1 in one call") { try SocketTests().blockingSocketPair(backend: $0) },
        ConformanceRule("socket.nonBlockingPollLoop", "non-blocking sockets in one thread: -1 want-read/want-write, poll, call again, resume") { try SocketTests().nonBlockingPollLoop(backend: $0) },
        ConformanceRule("socket.loopbackTCP[TLS 1.3]", "loopback TCP with the blocking helpers, TLS 1.3 and 1.2", requires: [.tls13]) { try SocketTests().loopbackTCP(backend: $0, version: .tls13) },
        ConformanceRule("socket.loopbackTCP[TLS 1.2]", "loopback TCP with the blocking helpers, TLS 1.3 and 1.2") { try SocketTests().loopbackTCP(backend: $0, version: .tls12) },
        ConformanceRule("socket.ipv6", "IPv6 loopback and an IP-address server name (no SNI, IP SAN verified)") { try SocketTests().ipv6(backend: $0) },
        ConformanceRule("socket.peerSocketGone", "the peer's socket is gone: write gives -1 .syscall with EPIPE") { try SocketTests().peerSocketGone(backend: $0) },
        ConformanceRule("socket.closedDescriptor", "a closed descriptor: -1 .syscall EBADF") { try SocketTests().closedDescriptor(backend: $0) },
        ConformanceRule("socket.sharedContext", "one context shared by many threads making connections at once") { try SocketTests().sharedContext(backend: $0) },
    ]
}
