// Over 400 lines on purpose: one test per contract row (Docs/contract.md), in the
// order of that page, so that the page and the suite can be read side by side.
// Docs/contract.md, row by row, against the core alone: the scripted backend answers each
// engine call from a script, so every result below is the core's doing (TLSConnection,
// TLSBackend.makeContext, the wire reader), with no C library involved.
import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A transport whose every call fails with one errno (a reset or closed socket).
private final class BrokenTransport: TLSCustomTransport {
    let errno: Int32
    init(errno: Int32) { self.errno = errno }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult { .failed(errno: errno) }
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult { .failed(errno: errno) }
}

/// One fake connection and its script.
private struct Fake {
    let script = EngineScript()
    let connection: TLSConnection
    let pair = TLSMemoryPair()

    init(_ role: TLSRole = .client, transport: TLSTransport? = nil, attach: Bool = true,
         configure: (inout TLSConfiguration) -> Void = { _ in }) throws {
        var configuration: TLSConfiguration
        switch role {
        case .client:
            configuration = .makeClientConfiguration()
            configuration.serverName = "fake.test"
        case .server:
            configuration = .makeServerConfiguration(identity: TLSIdentity(certificateChainPEM: "unused", privateKeyPEM: "unused"))
        }
        configure(&configuration)
        let context = try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        connection = context.makeConnection()
        if attach { try connection.setTransport(transport ?? .memory(pair)) }
        if role == .client { try connection.setConnectState() } else { try connection.setAcceptState() }
    }

    /// Scripts a completed handshake and runs it.
    func established() -> Fake {
        script.handshake = [.status(.success(1))]
        #expect(connection.step { $0.doHandshake() } == Step(1, .none))
        return self
    }

    var code: TLSError.Code? { connection.lastError?.code }
}

@Suite("Scripted backend: the contract, enforced by the core", .timeLimit(.minutes(5)))
struct ScriptedContractTests {
    // MARK: makeContext: validation and capabilities, once, in the core

    @Test func anOptionNeedingAMissingCapabilityIsRefusedBeforeTheBackendSeesIt() throws {
        let script = EngineScript()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.keyLogger = TLSKeyLogger { _ in }
        let error = #expect(throws: TLSError.self) {
            try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        }
        #expect(error?.code == .unsupported)
        #expect(error?.backend == ScriptedBackend.id)
        #expect(error?.message == "keyLogger is not supported by the Scripted backend")
        #expect(script.contextsMade == 0)
    }

    @Test func anInvalidConfigurationIsRefusedBeforeTheBackendSeesIt() throws {
        let script = EngineScript()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tls13
        configuration.maximumTLSVersion = .tls12
        let error = #expect(throws: TLSError.self) {
            try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.backend == .tlsKit)
        #expect(script.contextsMade == 0)
    }

    @Test func aSupportedConfigurationReachesTheBackendOnce() throws {
        let fake = try Fake()
        #expect(fake.script.contextsMade == 1)
        #expect(fake.connection.context.backendID == ScriptedBackend.id)
        #expect(ObjectIdentifier(fake.connection.context.backend) == ObjectIdentifier(ScriptedBackend.self))
    }

    @Test func connectionFeaturesNeedingAMissingCapabilityAreRefused() throws {
        let fake = try Fake().established()
        let error = #expect(throws: TLSError.self) {
            try fake.connection.setSession(TLSSession(bytes: [1], backend: ScriptedBackend.id))
        }
        #expect(error?.code == .unsupported)
        #expect(error?.message == "session resumption is not supported by the Scripted backend")
        #expect(fake.connection.step { $0.requestKeyUpdate() } == Step(-1, .ssl))
        #expect(fake.code == .unsupported)
        #expect(throws: TLSError.self) { try fake.connection.exportKeyingMaterial(label: "x", length: 8) }
        #expect(fake.script.calls == ["handshake"])
    }

    // MARK: Handshake rows

    @Test func handshakeCompletes() throws {
        let fake = try Fake().established()
        #expect(fake.connection.isHandshakeComplete)
        #expect(fake.connection.negotiatedVersion == .tls13)
        #expect(fake.connection.cipherSuite == "TLS_AES_128_GCM_SHA256")
        #expect(fake.connection.negotiatedApplicationProtocol == "h2")
        #expect(fake.script.sessionsMade.count == 1)
        #expect(fake.script.sessionsMade.first?.serverName == "fake.test")
    }

    @Test func transportCannotProgressGivesTheExactDirection() throws {
        let fake = try Fake()
        fake.script.handshake = [.status(.wantRead), .status(.wantWrite), .status(.success(1))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .wantRead))
        #expect(fake.connection.step { $0.connect() } == Step(-1, .wantWrite))
        #expect(fake.connection.step { $0.connect() } == Step(1, .none))
        #expect(fake.script.sessionsMade.count == 1)  // resumed, never restarted
    }

    @Test func handshakeAgainAfterSuccessSendsNothing() throws {
        let fake = try Fake().established()
        #expect(fake.connection.step { $0.doHandshake() } == Step(1, .none))
        #expect(fake.connection.step { $0.connect() } == Step(1, .none))
        #expect(fake.script.calls == ["handshake"])
    }

    @Test(arguments: [TLSRole.client, .server])
    func noTransportOnEveryRetry(role: TLSRole) throws {
        let fake = try Fake(role, attach: false)
        for _ in 0..<3 {
            #expect(fake.connection.step { $0.doHandshake() } == Step(-1, .ssl))
            #expect(fake.code == .noTransport)
        }
        #expect(fake.script.sessionsMade.isEmpty)
    }

    @Test func handshakeBeforeARoleIsSet() throws {
        let script = EngineScript()
        let context = try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(.makeClientConfiguration()) }
        let connection = context.makeConnection()
        try connection.setTransport(.memory(TLSMemoryPair()))
        #expect(connection.step { $0.doHandshake() } == Step(-1, .ssl))
        #expect(connection.lastError?.code == .roleNotSet)
    }

    @Test func connectOnAServerAndAcceptOnAClient() throws {
        let server = try Fake(.server)
        #expect(server.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(server.code == .invalidState)
        let client = try Fake(.client)
        #expect(client.connection.step { $0.accept() } == Step(-1, .ssl))
        #expect(client.code == .invalidState)
        #expect(server.script.calls.isEmpty && client.script.calls.isEmpty)
    }

    @Test func clientWithFullVerificationAndNoServerName() throws {
        let fake = try Fake { $0.serverName = nil }
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .invalidConfiguration)
        #expect(fake.script.sessionsMade.isEmpty)
        #expect(fake.pair.pendingOutgoing == 0)
    }

    @Test func closeNotifyDuringTheHandshakeIsZeroAndSticky() throws {
        let fake = try Fake()
        fake.script.handshake = [.status(.closeNotify)]
        #expect(fake.connection.step { $0.connect() } == Step(0, .zeroReturn))
        #expect(fake.connection.step { $0.connect() } == Step(0, .zeroReturn))
        #expect(fake.connection.readStep().0 == Step(0, .zeroReturn))
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .ssl))
        #expect(fake.code == .handshakeNotComplete)
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(fake.code == .shutdownDuringHandshake)
        #expect(fake.script.calls == ["handshake"])
    }

    @Test func transportEOFWithoutCloseNotifyDuringTheHandshake() throws {
        let fake = try Fake()
        fake.pair.closeIncoming()
        fake.script.handshake = [.readTransport(then: .failure(TLSError(.protocolFailure, "the library's words", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .unexpectedEOF)
        #expect(fake.script.alertsAsked.isEmpty)  // nobody to send it to
    }

    @Test func fatalAlertReceivedIsNamedAndNotAnswered() throws {
        let fake = try Fake()
        fake.script.handshake = [.status(.failure(TLSError(.alertReceived, "handshake_failure", backend: ScriptedBackend.id, alert: .handshakeFailure)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .alertReceived)
        #expect(fake.connection.lastError?.alert == .handshakeFailure)
        #expect(fake.script.alertsAsked.isEmpty)
    }

    @Test func protocolFailureWeDetectSendsTheFatalAlert() throws {
        let fake = try Fake()
        fake.script.handshake = [.status(.failure(TLSError(.protocolFailure, "no shared cipher", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == .unexpectedMessage)
        #expect(fake.connection.lastError?.message == "no shared cipher (alert unexpected_message sent)")
    }

    /// `sendFatalAlert` returns the alert the peer gets: the library's own when it had
    /// already sent one. The error names that alert, not the one the core asked for, and
    /// the core writes no second alert: the wire holds exactly the library's record.
    @Test func protocolFailureAfterTheLibrarySentItsOwnAlertReportsTheLibrarysAlert() throws {
        let fake = try Fake()
        fake.script.alertAnswer = .some(.handshakeFailure)
        // The library's own alert record: alert, TLS 1.2 record version, 2 bytes, fatal, handshake_failure (40).
        let ownAlert: [UInt8] = [21, 3, 3, 0, 2, 2, 40]
        fake.script.handshake = [.writeTransport(ownAlert,
                                                 then: .failure(TLSError(.protocolFailure, "no shared cipher", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == .handshakeFailure)
        #expect(fake.connection.lastError?.message == "no shared cipher (alert handshake_failure sent)")
        #expect(fake.pair.takeOutgoing() == ownAlert)
    }

    /// The engine could send no alert: the error claims none and the wire stays empty.
    @Test func protocolFailureWhenNoAlertCouldBeSentClaimsNone() throws {
        let fake = try Fake()
        fake.script.alertAnswer = .some(nil)
        fake.script.handshake = [.status(.failure(TLSError(.protocolFailure, "no shared cipher", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == nil)
        #expect(fake.connection.lastError?.message == "no shared cipher")
        #expect(fake.pair.takeOutgoing() == [])
    }

    @Test func garbageOnTheWireIsTheCoresVerdictEvenIfTheLibraryWaits() throws {
        let fake = try Fake()
        fake.pair.deliverIncoming(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        fake.script.handshake = [.readTransport(then: .wantRead)]  // a library still waiting
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        // 'G' (71) is no content type: the wire reader's unexpected_message, asked once.
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == .unexpectedMessage)
        #expect(fake.connection.lastError?.message == "the peer sent a record of unknown content type 71 (alert unexpected_message sent)")
    }

    /// The wire reader's verdict when the library had already sent an alert of its own:
    /// the error names the library's alert (the one the peer got), and the core writes
    /// no alert bytes itself.
    @Test func garbageOnTheWireAfterTheLibrarySentItsOwnAlertReportsTheLibrarysAlert() throws {
        let fake = try Fake()
        fake.script.alertAnswer = .some(.handshakeFailure)
        fake.pair.deliverIncoming(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        fake.script.handshake = [.readTransport(then: .wantRead)]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == .handshakeFailure)
        #expect(fake.connection.lastError?.message == "the peer sent a record of unknown content type 71 (alert handshake_failure sent)")
        #expect(fake.pair.takeOutgoing() == [])
    }

    /// The wire reader's verdict when the engine could send no alert: the message says
    /// none was sent, the core writes none itself, and `alert` keeps the verdict's alert
    /// (TLSConnection.wireFailure: "the wire reader's fatal alert").
    @Test func garbageOnTheWireWhenNoAlertCouldBeSent() throws {
        let fake = try Fake()
        fake.script.alertAnswer = .some(nil)
        fake.pair.deliverIncoming(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        fake.script.handshake = [.readTransport(then: .wantRead)]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
        #expect(fake.script.alertsAsked == [.unexpectedMessage])
        #expect(fake.connection.lastError?.alert == .unexpectedMessage)
        #expect(fake.connection.lastError?.message == "the peer sent a record of unknown content type 71")
        #expect(fake.pair.takeOutgoing() == [])
    }

    @Test func certificateVerificationFailureKeepsItsCategoryAndAlert() throws {
        let fake = try Fake()
        let failure = TLSError(.certificateVerificationFailed, "expired", backend: ScriptedBackend.id,
                               verificationFailure: .expired, alert: .certificateExpired)
        fake.script.handshake = [.status(.failure(failure))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .ssl))
        #expect(identical(fake.connection.lastError, failure))
        #expect(fake.script.alertsAsked.isEmpty)
    }

    @Test func transportErrorIsSyscallWithErrnoWhateverTheLibrarySays() throws {
        let fake = try Fake(transport: .custom(BrokenTransport(errno: ECONNRESET)))
        fake.script.handshake = [.readTransport(then: .failure(TLSError(.protocolFailure, "pull failed", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .syscall))
        #expect(fake.code == .transportFailure)
        #expect(fake.connection.lastError?.errno == ECONNRESET)
        #expect(fake.script.alertsAsked.isEmpty)
    }

    @Test func everyCallAfterAFatalResultRepeatsItAndTheFirstErrorStays() throws {
        let fake = try Fake(transport: .custom(BrokenTransport(errno: EPIPE)))
        fake.script.handshake = [.writeTransport([22, 3, 1], then: .failure(TLSError(.internalError, "push failed", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.connect() } == Step(-1, .syscall))
        let first = fake.connection.lastError
        #expect(first?.errno == EPIPE)
        #expect(fake.connection.step { $0.connect() } == Step(-1, .syscall))
        #expect(fake.connection.readStep().0 == Step(-1, .syscall))
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .syscall))
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .syscall))
        #expect(fake.connection.step { $0.requestKeyUpdate() } == Step(-1, .syscall))
        #expect(identical(fake.connection.lastError, first))
        #expect(fake.script.calls == ["handshake"])
    }

    // MARK: read rows

    @Test func readData() throws {
        let fake = try Fake().established()
        fake.script.read = [.status(.success(5))]
        let (step, bytes) = fake.connection.readStep()
        #expect(step == Step(5, .none))
        #expect(bytes == Array("aaaaa".utf8))
    }

    @Test func readNothingThereYet() throws {
        let fake = try Fake().established()
        fake.script.read = [.status(.wantRead), .status(.wantWrite)]
        #expect(fake.connection.readStep().0 == Step(-1, .wantRead))
        #expect(fake.connection.readStep().0 == Step(-1, .wantWrite))
    }

    @Test func readIntoAnEmptyBufferDoesNoIO() throws {
        let fake = try Fake().established()
        var empty = [UInt8]()
        #expect(fake.connection.step { $0.read(into: &empty) } == Step(0, .none))
        #expect(fake.script.calls == ["handshake"])
    }

    @Test func readAfterCloseNotifyIsZeroStickyAndWritingStillWorks() throws {
        let fake = try Fake().established()
        fake.script.read = [.status(.closeNotify)]
        fake.script.write = [.status(.success(3))]
        #expect(fake.connection.readStep().0 == Step(0, .zeroReturn))
        #expect(fake.connection.readStep().0 == Step(0, .zeroReturn))
        #expect(fake.connection.step { $0.write([1, 2, 3]) } == Step(3, .none))
        #expect(fake.script.calls == ["handshake", "read", "write"])
    }

    @Test func readWhenThePeerVanishedIsZeroThenMinusOne() throws {
        let fake = try Fake().established()
        fake.pair.closeIncoming()
        fake.script.read = [.readTransport(then: .failure(TLSError(.protocolFailure, "premature end", backend: ScriptedBackend.id)))]
        #expect(fake.connection.readStep().0 == Step(0, .ssl))
        #expect(fake.code == .unexpectedEOF)
        #expect(fake.connection.readStep().0 == Step(-1, .ssl))
    }

    @Test func readBeforeTheHandshake() throws {
        let fake = try Fake()
        #expect(fake.connection.readStep().0 == Step(-1, .ssl))
        #expect(fake.code == .handshakeNotComplete)
        #expect(fake.script.calls.isEmpty)
    }

    @Test func readACorruptedRecordOrAlert() throws {
        let fake = try Fake().established()
        fake.script.read = [.status(.failure(TLSError(.protocolFailure, "bad record mac", backend: ScriptedBackend.id, alert: .badRecordMAC)))]
        #expect(fake.connection.readStep().0 == Step(-1, .ssl))
        #expect(fake.code == .protocolFailure)
    }

    @Test func readTransportError() throws {
        let fake = try Fake(transport: .custom(BrokenTransport(errno: ECONNRESET))).established()
        fake.script.read = [.readTransport(then: .failure(TLSError(.internalError, "pull", backend: ScriptedBackend.id)))]
        #expect(fake.connection.readStep().0 == Step(-1, .syscall))
        #expect(fake.connection.lastError?.errno == ECONNRESET)
    }

    // MARK: write rows

    @Test func writeIsAllOrNothingOverPartialEngineWrites() throws {
        let fake = try Fake().established()
        fake.script.write = [.status(.success(2)), .status(.success(3))]
        #expect(fake.connection.step { $0.write([1, 2, 3, 4, 5]) } == Step(5, .none))
        #expect(fake.script.written == [1, 2, 3, 4, 5])
    }

    @Test func emptyWriteDoesNoIO() throws {
        let fake = try Fake().established()
        #expect(fake.connection.step { $0.write([]) } == Step(0, .none))
        #expect(fake.script.calls == ["handshake"])
    }

    @Test func writeThatBlocksResumesWithTheSameBytesAndRefusesAnotherLength() throws {
        let fake = try Fake().established()
        fake.script.write = [.status(.success(2)), .status(.wantWrite), .status(.wantRead), .status(.success(3))]
        #expect(fake.connection.step { $0.write([1, 2, 3, 4, 5]) } == Step(-1, .wantWrite))
        #expect(fake.connection.step { $0.write([1, 2, 3]) } == Step(-1, .ssl))
        #expect(fake.code == .badWriteRetry)
        #expect(fake.connection.step { $0.write([1, 2, 3, 4, 5]) } == Step(-1, .wantRead))
        #expect(fake.connection.step { $0.write([1, 2, 3, 4, 5]) } == Step(5, .none))
        #expect(fake.script.written == [1, 2, 3, 4, 5])  // resumed at byte 2, never re-sent
    }

    @Test func writeAfterOurShutdown() throws {
        let fake = try Fake().established()
        fake.script.closeNotify = [.status(.success(1))]
        #expect(fake.connection.step { $0.shutdown() } == Step(0, .none))
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .ssl))
        #expect(fake.code == .alreadyShutDown)
    }

    @Test func writeBeforeTheHandshake() throws {
        let fake = try Fake()
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .ssl))
        #expect(fake.code == .handshakeNotComplete)
    }

    @Test func writeWhenThePeersSocketIsGone() throws {
        let fake = try Fake(transport: .custom(BrokenTransport(errno: EPIPE))).established()
        fake.script.write = [.writeTransport([23, 3, 3], then: .failure(TLSError(.internalError, "push", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .syscall))
        #expect(fake.connection.lastError?.errno == EPIPE)
    }

    // MARK: shutdown rows

    @Test func shutdownSendsCloseNotifyOnceThenWaitsForThePeers() throws {
        let fake = try Fake().established()
        fake.script.closeNotify = [.status(.success(1))]
        fake.script.read = [.status(.wantRead), .status(.success(4)), .status(.closeNotify)]
        #expect(fake.connection.step { $0.shutdown() } == Step(0, .none))
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .wantRead))
        #expect(fake.connection.step { $0.shutdown() } == Step(1, .none))  // data in between discarded
        #expect(fake.connection.step { $0.shutdown() } == Step(1, .none))
        #expect(fake.script.calls == ["handshake", "closeNotify", "read", "read", "read"])
    }

    @Test func shutdownAfterThePeerClosedFirstIsOne() throws {
        let fake = try Fake().established()
        fake.script.read = [.status(.closeNotify)]
        fake.script.closeNotify = [.status(.success(1))]
        #expect(fake.connection.readStep().0 == Step(0, .zeroReturn))
        #expect(fake.connection.step { $0.shutdown() } == Step(1, .none))
    }

    @Test func shutdownFlushRetriesUntilSentAndNeverSendsTwice() throws {
        let fake = try Fake().established()
        fake.script.closeNotify = [.status(.wantWrite), .status(.success(1))]
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .wantWrite))
        #expect(fake.connection.step { $0.write([1]) } == Step(-1, .ssl))  // close_notify has begun
        #expect(fake.code == .alreadyShutDown)
        #expect(fake.connection.step { $0.shutdown() } == Step(0, .none))
        #expect(fake.script.calls.filter { $0 == "closeNotify" }.count == 2)
    }

    @Test(arguments: [false, true])
    func shutdownDuringOrBeforeTheHandshake(started: Bool) throws {
        let fake = try Fake()
        if started {
            fake.script.handshake = [.status(.wantRead)]
            #expect(fake.connection.step { $0.connect() } == Step(-1, .wantRead))
        }
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(fake.code == .shutdownDuringHandshake)
        #expect(!fake.script.calls.contains("closeNotify"))
    }

    @Test func shutdownWhenThePeerVanishesWhileWeWait() throws {
        let fake = try Fake().established()
        fake.pair.closeIncoming()
        fake.script.closeNotify = [.status(.success(1))]
        fake.script.read = [.readTransport(then: .failure(TLSError(.protocolFailure, "eof", backend: ScriptedBackend.id)))]
        #expect(fake.connection.step { $0.shutdown() } == Step(0, .none))
        #expect(fake.connection.step { $0.shutdown() } == Step(-1, .ssl))
        #expect(fake.code == .unexpectedEOF)
    }
}
