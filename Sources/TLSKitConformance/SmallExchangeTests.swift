import Foundation
import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

/// What keeps a small request and its reply from waiting on a delayed ACK (issue 14):
/// the server answers the client's Finished at once, and the helpers' sockets have
/// `TCP_NODELAY`. Asserted from the bytes and the socket options, never from a clock.
struct SmallExchangeTests {
    /// The content types of the TLS records in `bytes`, in order (nil if a record is cut).
    static func recordTypes(_ bytes: [UInt8]) -> [UInt8]? {
        var types: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard index + 5 <= bytes.count else { return nil }
            let length = Int(bytes[index + 3]) << 8 | Int(bytes[index + 4])
            guard index + 5 + length <= bytes.count else { return nil }
            types.append(bytes[index])
            index += 5 + length
        }
        return types
    }

    func ticketsAnswerTheClientFinished(backend: Backend) throws {
        let fixture = try Fixture(backend)
        // One pair of contexts for both connections: the server's ticket keys must be
        // the ones that sealed the ticket the second client resumes with.
        let clientContext = try fixture.clientContext(), serverContext = try fixture.serverContext()
        let link = try MemoryLink(client: clientContext, server: serverContext)
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        link.exchange()
        #expect(link.server.step { $0.accept() } == Step(-1, .wantRead))
        let flight = link.serverWire.takeOutgoing()
        #expect(!flight.isEmpty)
        link.clientWire.deliverIncoming(flight)
        #expect(link.client.step { $0.connect() } == Step(1, .none))
        #expect(link.client.negotiatedVersion == .tls13)
        let finished = link.clientWire.takeOutgoing()
        #expect(!finished.isEmpty)
        // The server said nothing more until the client's Finished came in...
        #expect(link.serverWire.pendingOutgoing == 0)
        link.serverWire.deliverIncoming(finished)
        #expect(link.server.step { $0.accept() } == Step(1, .none))
        // ...and answers it with the tickets, which carry the ACK of the client's
        // Finished: a client with Nagle on need not wait for a delayed ACK before its
        // first request. (GnuTLS on its own sends them before the client's Finished.)
        let answer = link.serverWire.takeOutgoing()
        #expect(Self.recordTypes(answer) == [23, 23], "\(answer.count) bytes")
        // The client reads them as tickets: a resumable session, no application data.
        link.clientWire.deliverIncoming(answer)
        #expect(link.client.readStep().0 == Step(-1, .wantRead))
        #expect(link.client.isSessionReused == false)
        #expect(link.server.isSessionReused == false)
        // Resumable means resumed: a new connection given that session resumes it, as
        // both ends say.
        let session = try #require(link.client.session)
        let again = try MemoryLink(client: clientContext, server: serverContext)
        try again.client.setSession(session)
        let steps = again.handshake()
        #expect(steps.client.last == Step(1, .none))
        #expect(steps.server.last == Step(1, .none))
        #expect(again.client.negotiatedVersion == .tls13)
        #expect(again.client.isSessionReused == true)
        #expect(again.server.isSessionReused == true)
    }

    func noTicketsNoAnswer(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let link = try MemoryLink(fixture, server: { $0.sessionTicketsEnabled = false })
        let steps = link.handshake()
        #expect(steps.client.last == Step(1, .none))
        #expect(steps.server.last == Step(1, .none))
        #expect(link.serverWire.pendingOutgoing == 0)
        #expect(link.clientWire.pendingIncoming == 0)
    }

    static func noDelay(_ fd: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length) == 0 else { return -1 }
        return value
    }

    func noDelayOption(backend: Backend, noDelay: Bool) throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let clientContext = try fixture.clientContext()
        let listener = noDelay ? try TLSListener(host: "127.0.0.1", port: 0)
                               : try TLSListener(host: "127.0.0.1", port: 0, noDelay: false)
        #expect(listener.noDelay == noDelay)
        let server = Background { () -> Int32 in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(20))
            let option = Self.noDelay(socket.descriptor)
            let request = try socket.read()
            try socket.write(request)
            try socket.shutdown(waitForPeer: true)
            return option
        }
        let socket = noDelay
            ? try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                    serverName: "localhost", timeout: .seconds(20))
            : try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                    serverName: "localhost", timeout: .seconds(20), noDelay: false)
        #expect(Self.noDelay(socket.descriptor) == (noDelay ? 1 : 0))
        try socket.write([42])
        #expect(try socket.read() == [42])
        try socket.shutdown(waitForPeer: true)
        #expect(try server.join() == (noDelay ? 1 : 0))
    }
}

extension SmallExchangeTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = [
        ConformanceRule("smallExchange.ticketsAnswerTheClientFinished", "TLS 1.3: the server answers the client's Finished with its two session tickets, not before", requires: [.tls13, .sessionResumption]) { try SmallExchangeTests().ticketsAnswerTheClientFinished(backend: $0) },
        ConformanceRule("smallExchange.noTicketsNoAnswer", "without tickets the server sends nothing after its flight") { try SmallExchangeTests().noTicketsNoAnswer(backend: $0) },
        ConformanceRule("smallExchange.noDelayOption[noDelay]", "TLSSocket.connect and TLSListener set TCP_NODELAY by default; noDelay: false leaves Nagle on") { try SmallExchangeTests().noDelayOption(backend: $0, noDelay: true) },
        ConformanceRule("smallExchange.noDelayOption[Nagle]", "TLSSocket.connect and TLSListener set TCP_NODELAY by default; noDelay: false leaves Nagle on") { try SmallExchangeTests().noDelayOption(backend: $0, noDelay: false) },
    ]
}
