// The connection's one state value is the truth: after a fatal result the failed state
// carries the first error, and no later call, however misused, replaces it or reaches
// the engine.
import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A transport whose every call fails with one errno.
private final class FailingTransport: TLSCustomTransport {
    let errno: Int32
    init(errno: Int32) { self.errno = errno }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult { .failed(errno: errno) }
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult { .failed(errno: errno) }
}

@Suite("State: the failed state carries the first error", .timeLimit(.minutes(2)))
struct StateRuleTests {
    @Test func aSecondFailingCallAfterAFatalErrorDoesNotReplaceTheError() throws {
        let script = EngineScript()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.serverName = "fake.test"
        let context = try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        let connection = context.makeConnection()
        try connection.setTransport(.custom(FailingTransport(errno: EPIPE)))
        script.handshake = [.writeTransport([22, 3, 1], then: .failure(TLSError(.internalError, "push failed", backend: ScriptedBackend.id)))]
        #expect(connection.step { $0.connect() } == Step(-1, .syscall))
        let first = try #require(connection.lastError)
        #expect(first.code == .transportFailure)
        #expect(first.errno == EPIPE)
        // Each of these would be a usage error (-1 .ssl) on a live connection: after the
        // fatal result each repeats it, and the first error stays.
        #expect(connection.step { $0.accept() } == Step(-1, .syscall))       // accept() on a client
        #expect(identical(connection.lastError, first))
        #expect(connection.step { $0.write([]) } == Step(-1, .syscall))
        #expect(connection.step { $0.shutdown() } == Step(-1, .syscall))
        #expect(connection.step { $0.requestKeyUpdate() } == Step(-1, .syscall))
        #expect(identical(connection.lastError, first))
        #expect(script.calls == ["handshake"])
    }

    @Test("the exporter after a fatal result: refused by the core with the first error", arguments: allBackends)
    func exporterAfterAFatalResult(backend: Backend) throws {
        let link = try MemoryLink(try Fixture(backend))
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(try link.client.exportKeyingMaterial(label: "EXPORTER-test", length: 16).count == 16)
        // An application-data record too short to carry an AEAD tag: fatal on every backend.
        link.clientWire.deliverIncoming([23, 3, 3, 0, 5, 1, 2, 3, 4, 5])
        #expect(link.client.readStep().0 == Step(-1, .ssl))
        let first = try #require(link.client.lastError)
        let error = #expect(throws: TLSError.self) { try link.client.exportKeyingMaterial(label: "EXPORTER-test", length: 16) }
        #expect(identical(error, first))
        #expect(identical(link.client.lastError, first))
        // What the handshake negotiated stays readable.
        #expect(link.client.negotiatedVersion != nil)
    }

    @Test func garbageWhileWaitingForThePeersCloseNotifyIsTheWireReadersVerdict() throws {
        let script = EngineScript()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.serverName = "fake.test"
        let context = try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        let connection = context.makeConnection()
        let pair = TLSMemoryPair()
        try connection.setTransport(.memory(pair))
        script.handshake = [.status(.success(1))]
        #expect(connection.step { $0.connect() } == Step(1, .none))
        script.closeNotify = [.status(.success(1))]
        #expect(connection.step { $0.shutdown() } == Step(0, .none))
        pair.deliverIncoming(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        // A library that fails on it without an alert of its own: the core sends the wire
        // reader's alert and words the error, as in the handshake and in read.
        script.read = [.readTransport(then: .failure(TLSError(.protocolFailure, "bad record", backend: ScriptedBackend.id)))]
        #expect(connection.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(connection.lastError?.code == .protocolFailure)
        #expect(script.alertsAsked == [.unexpectedMessage])
        #expect(connection.lastError?.alert == .unexpectedMessage)
        #expect(connection.lastError?.message == "the peer sent a record of unknown content type 71 (alert unexpected_message sent)")
    }

    @Test("TLS 1.3 server: tickets that meet a full transport go out once, then the handshake completes", arguments: allBackends)
    func ticketsThroughAFullTransport(backend: Backend) throws {
        let link = try MemoryLink(try Fixture(backend), capacity: 64, client: { $0.minimumTLSVersion = .tls13 })
        let steps = link.handshake(maxRounds: 1_000)
        #expect(steps.client.last == Step(1, .none))
        #expect(steps.server.last == Step(1, .none))
        #expect(link.server.step { $0.doHandshake() } == Step(1, .none))
        link.exchange()
        var session: TLSSession?
        for _ in 0..<100 where session == nil {
            #expect(link.client.readStep().0 == Step(-1, .wantRead))
            link.exchange()
            session = link.client.session
        }
        #expect(session != nil)
        #expect(link.server.step { $0.write(Array("ok".utf8)) } == Step(2, .none))
        link.exchange()
        let (step, bytes) = link.client.readStep()
        #expect(step == Step(2, .none))
        #expect(bytes == Array("ok".utf8))
    }
}
