import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

/// The rows of Docs/contract.md, "What each result means" › "`read(into:)`", "`write(_:)`"
/// and "`shutdown()`", in memory.
struct DataContractTests {
    private func established(_ backend: Backend, capacity: Int = 1 << 20) throws -> MemoryLink {
        let link = try MemoryLink(Fixture(backend), capacity: capacity)
        let (client, server) = link.handshake()
        try #require(client.last == Step(1, .none) && server.last == Step(1, .none))
        return link
    }

    func beforeHandshake(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        #expect(link.client.readStep().0 == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .handshakeNotComplete)
        #expect(link.client.step { $0.write(Array("early".utf8)) } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .handshakeNotComplete)
        #expect(link.clientWire.pendingOutgoing == 0)
        // Not fatal: the handshake still works.
        #expect(link.handshake().client.last == Step(1, .none))
    }

    func readWrite(backend: Backend) throws {
        let link = try established(backend)
        // Drain anything post-handshake (TLS 1.3 tickets) first.
        _ = link.client.readStep()
        link.exchange()
        #expect(link.client.readStep().0 == Step(-1, .wantRead))
        #expect(link.server.readStep().0 == Step(-1, .wantRead))

        let ping = Array("ping".utf8)
        #expect(link.client.step { $0.write(ping) } == Step(4, .none))
        link.exchange()
        let (step, bytes) = link.server.readStep()
        #expect(step == Step(4, .none))
        #expect(bytes == ping)

        let pong = [UInt8](repeating: 0x5A, count: 40_000)
        #expect(link.server.step { $0.write(pong) } == Step(40_000, .none))
        link.exchange()
        var received: [UInt8] = []
        for _ in 0..<100 where received.count < pong.count {
            let (step, chunk) = link.client.readStep()
            try #require(step.result > 0, "read returned \(step)")
            received += chunk
        }
        #expect(received == pong)
    }

    func zeroLength(backend: Backend) throws {
        let link = try established(backend)
        link.exchange()
        var empty: [UInt8] = []
        #expect(link.client.step { $0.read(into: &empty) } == Step(0, .none))
        #expect(link.client.step { $0.write([]) } == Step(0, .none))
        #expect(link.clientWire.pendingOutgoing == 0)
    }

    func writeResumes(backend: Backend) throws {
        let link = try established(backend, capacity: 4096)
        link.exchange()
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var received: [UInt8] = []
        var wants = 0
        var result = link.client.step { $0.write(payload) }
        // 300 kB through a 4 kB window: well under 1000 retries; the bound keeps a
        // write that never progresses from hanging the suite.
        for _ in 0..<1000 where result.result < 0 {
            #expect(result == Step(-1, .wantWrite))
            wants += 1
            link.exchange()
            for _ in 0..<1000 { let (step, chunk) = link.server.readStep(); if step.result <= 0 { break }; received += chunk }
            let copy = Array(payload)  // the same bytes at another address
            result = link.client.step { $0.write(copy) }
        }
        #expect(result == Step(300_000, .none))
        #expect(wants > 0)
        link.exchange()
        for _ in 0..<1000 { let (step, chunk) = link.server.readStep(); if step.result <= 0 { break }; received += chunk }
        #expect(received == payload)
    }

    func badWriteRetry(backend: Backend) throws {
        let link = try established(backend, capacity: 1024)
        link.exchange()
        let payload = [UInt8](repeating: 1, count: 100_000)
        #expect(link.client.step { $0.write(payload) } == Step(-1, .wantWrite))
        #expect(link.client.step { $0.write(Array(payload.prefix(10))) } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .badWriteRetry)

        // Longer is refused too: Docs/contract.md, any length other than the interrupted one.
        let longer = try established(backend, capacity: 1024)
        longer.exchange()
        #expect(longer.client.step { $0.write(payload) } == Step(-1, .wantWrite))
        #expect(longer.client.step { $0.write(payload + [2]) } == Step(-1, .ssl))
        #expect(longer.client.lastError?.code == .badWriteRetry)
        #expect(longer.client.lastError?.message == "write retried with 100001 bytes; the interrupted write had 100000")
    }

    func negotiatedAfterFailure(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.applicationProtocols = ["h2"] },
                                  server: { $0.applicationProtocols = ["h2"] })
        let (client, server) = link.handshake()
        try #require(client.last == Step(1, .none) && server.last == Step(1, .none))
        let version = link.client.negotiatedVersion, suite = link.client.cipherSuite
        let chain = link.client.peerCertificateChain
        #expect(version == .tls13)
        #expect(chain.count == 1)
        // A record of garbage where a protected record must come: the read fails.
        link.clientWire.deliverIncoming([23, 3, 3, 0, 32] + [UInt8](repeating: 0xA5, count: 32))
        #expect(link.client.readStep().0 == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .protocolFailure)
        #expect(link.client.isHandshakeComplete)
        #expect(link.client.negotiatedVersion == version)
        #expect(link.client.cipherSuite == suite)
        #expect(link.client.negotiatedApplicationProtocol == "h2")
        #expect(link.client.peerCertificateChain == chain)
        #expect(link.client.peerVerification == .verified)
    }

    func shutdown(backend: Backend) throws {
        let link = try established(backend)
        link.exchange()
        _ = link.client.readStep()  // consume tickets
        link.exchange()

        #expect(link.client.step { $0.shutdown() } == Step(0, .none))
        let closeNotify = link.clientWire.pendingOutgoing
        #expect(closeNotify > 0)
        // Waiting for the peer's close_notify on a non-blocking transport.
        #expect(link.client.step { $0.shutdown() } == Step(-1, .wantRead))
        #expect(link.clientWire.pendingOutgoing == closeNotify)  // nothing more sent
        // Writing after our own shutdown is refused.
        #expect(link.client.step { $0.write(Array("late".utf8)) } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alreadyShutDown)
        link.exchange()

        // The server sees the close: 0 .zeroReturn, again and again.
        #expect(link.server.readStep().0 == Step(0, .zeroReturn))
        #expect(link.server.readStep().0 == Step(0, .zeroReturn))
        // Half-close: the server can still write, and the client can still read.
        #expect(link.server.step { $0.write(Array("bye".utf8)) } == Step(3, .none))
        link.exchange()
        let (step, bytes) = link.client.readStep()
        #expect(step == Step(3, .none))
        #expect(bytes == Array("bye".utf8))
        // The server answers: both close_notify seen, so 1 at once.
        #expect(link.server.step { $0.shutdown() } == Step(1, .none))
        link.exchange()
        #expect(link.client.step { $0.shutdown() } == Step(1, .none))
        // Further calls: 1, nothing sent.
        #expect(link.client.step { $0.shutdown() } == Step(1, .none))
        #expect(link.server.step { $0.shutdown() } == Step(1, .none))
        #expect(link.exchange() == 0)
    }

    func peerVanishes(backend: Backend) throws {
        let link = try established(backend)
        link.exchange()
        _ = link.client.readStep()
        link.clientWire.closeIncoming()
        #expect(link.client.readStep().0 == Step(0, .ssl))
        #expect(link.client.lastError?.code == .unexpectedEOF)
        #expect(link.client.readStep().0 == Step(-1, .ssl))
        #expect(link.client.step { $0.write([1]) } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .unexpectedEOF)
    }

    func corruptedRecord(backend: Backend) throws {
        let link = try established(backend)
        link.exchange()
        _ = link.client.readStep()
        link.exchange()
        #expect(link.client.step { $0.write(Array("integrity".utf8)) } == Step(9, .none))
        var record = link.clientWire.takeOutgoing()
        record[record.count - 3] ^= 0xFF
        link.serverWire.deliverIncoming(record)
        #expect(link.server.readStep().0 == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure)
        let alert = link.serverWire.takeOutgoing()
        #expect(!alert.isEmpty)
        link.clientWire.deliverIncoming(alert)
        #expect(link.client.readStep().0 == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alertReceived)
        #expect(link.client.lastError?.alert == .badRecordMAC)
    }
}

extension DataContractTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = [
        ConformanceRule("data.beforeHandshake", "read and write before the handshake: -1 .ssl handshakeNotComplete, nothing sent") { try DataContractTests().beforeHandshake(backend: $0) },
        ConformanceRule("data.readWrite", "application data both ways; read with nothing pending: -1 .wantRead") { try DataContractTests().readWrite(backend: $0) },
        ConformanceRule("data.zeroLength", "zero-length read and write: 0 .none, nothing sent") { try DataContractTests().zeroLength(backend: $0) },
        ConformanceRule("data.writeResumes", "write is all-or-nothing: -1 .wantWrite, then a retry with the same bytes from another buffer completes") { try DataContractTests().writeResumes(backend: $0) },
        ConformanceRule("data.badWriteRetry", "a write retry with a different length is refused: -1 .ssl badWriteRetry") { try DataContractTests().badWriteRetry(backend: $0) },
        ConformanceRule("data.negotiatedAfterFailure", "after a failure on an established connection, what was negotiated stays readable", requires: [.tls13, .alpn]) { try DataContractTests().negotiatedAfterFailure(backend: $0) },
        ConformanceRule("data.shutdown", "shutdown: 0 then 1; close_notify exactly once; peer reads 0 .zeroReturn (sticky) and can still write") { try DataContractTests().shutdown(backend: $0) },
        ConformanceRule("data.peerVanishes", "the peer vanishes without close_notify: read gives 0 .ssl unexpectedEOF, then -1 .ssl") { try DataContractTests().peerVanishes(backend: $0) },
        ConformanceRule("data.corruptedRecord", "a corrupted record: -1 .ssl and the peer is told with an alert") { try DataContractTests().corruptedRecord(backend: $0) },
    ]
}
