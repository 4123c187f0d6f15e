import Foundation
import Testing
import TLSKit

/// `TLSCustomVerification` (issue 22 §3): the callback gets the chain as sent and TLSKit's
/// own verdict, answers at once or later from another thread; meanwhile the handshake
/// returns -1 `.wantRetryVerify`; a rejection fails with the category given and the peer
/// receives the category's alert. Every client × server backend pair this build has (so
/// cross-backend with both traits), TLS 1.3 and 1.2.
@Suite("Custom verification callback", .timeLimit(.minutes(5)))
struct CustomVerificationTests {
    struct Pair: CustomTestStringConvertible, Sendable {
        let client: Backend
        let server: Backend
        var testDescription: String { "\(client.name) client → \(server.name) server" }
    }

    static let pairs = allBackends.flatMap { client in allBackends.map { Pair(client: client, server: $0) } }
    static let versions = [TLSVersion.tls13, .tls12]

    /// What the callback saw, and the completions it was handed.
    final class Recorder: Sendable {
        let requests = Locked<[TLSVerificationRequest]>([])
        let completions = Locked<[TLSVerificationCompletion]>([])
        let answerAtOnce: TLSVerificationVerdict?

        init(answerAtOnce: TLSVerificationVerdict? = nil) { self.answerAtOnce = answerAtOnce }

        var verification: TLSCustomVerification {
            TLSCustomVerification { [self] request, completion in
                requests.withLock { $0.append(request) }
                completions.withLock { $0.append(completion) }
                if let answerAtOnce { completion(answerAtOnce) }
            }
        }

        var calls: Int { requests.withLock { $0.count } }
        var request: TLSVerificationRequest? { requests.withLock { $0.first } }
        var completion: TLSVerificationCompletion? { completions.withLock { $0.first } }
    }

    /// Two self-signed identities (server, client), each made by its own backend.
    struct Identities {
        let server: TLSIdentity
        let client: TLSIdentity
        init(_ pair: Pair) throws {
            server = try pair.server.type.makeSelfSignedIdentity(
                commonName: "localhost", subjectAlternativeNames: ["localhost", "127.0.0.1"], validityDays: 2)
            client = try pair.client.type.makeSelfSignedIdentity(
                commonName: "client.example", subjectAlternativeNames: ["client.example"], validityDays: 2)
        }
    }

    /// A link where the client trusts the server (unless `trusted` is false: then it
    /// trusts only an unrelated certificate) and, with `mutual`, the server requires and
    /// trusts the client's certificate.
    func link(_ pair: Pair, _ version: TLSVersion, _ ids: Identities, trusted: Bool = true, mutual: Bool = false,
              serverName: String = "localhost",
              client clientChange: (inout TLSConfiguration) -> Void = { _ in },
              server serverChange: (inout TLSConfiguration) -> Void = { _ in }) throws -> MemoryLink {
        var server = TLSConfiguration.makeServerConfiguration(identity: ids.server)
        server.maximumTLSVersion = version
        var client = TLSConfiguration.makeClientConfiguration()
        client.maximumTLSVersion = version
        client.trustRoots = .certificates([.pem(trusted ? ids.server.certificateChainPEM : ids.client.certificateChainPEM)])
        client.serverName = serverName
        if mutual {
            server.clientAuthentication = .required
            server.trustRoots = .certificates([.pem(ids.client.certificateChainPEM)])
            client.certificateChain = .pem(ids.client.certificateChainPEM)
            client.privateKey = .pem(ids.client.privateKeyPEM)
        }
        clientChange(&client)
        serverChange(&server)
        return try MemoryLink(client: pair.client.type.makeContext(client), server: pair.server.type.makeContext(server))
    }

    /// The DER of the first certificate of a PEM chain.
    func der(_ pem: String) -> [UInt8] {
        let body = pem.components(separatedBy: "-----BEGIN CERTIFICATE-----")[1]
            .components(separatedBy: "-----END CERTIFICATE-----")[0]
        return [UInt8](Data(base64Encoded: body.filter { !$0.isWhitespace })!)
    }

    /// Completes `completion` on another thread and waits until the connection's wake-up
    /// has run (it runs on the completing thread, right after the answer).
    func answerFromAnotherThread(_ completion: TLSVerificationCompletion, _ verdict: TLSVerificationVerdict,
                                 waking connection: TLSConnection) throws {
        let woken = DispatchSemaphore(value: 0)
        connection.verificationWakeUp = { woken.signal() }
        let first = try Background { completion(verdict) }.join()
        #expect(first, "the first completion decides")
        #expect(woken.wait(timeout: .now() + 30) == .success, "the wake-up ran")
        #expect(!connection.isVerificationPending)
    }

    // MARK: - Client role

    @Test("client: an answer given inside the callback: no retry result at all", arguments: pairs, versions)
    func acceptSynchronously(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        let recorder = Recorder(answerAtOnce: .accept(validatedChain: [[1, 2, 3]]))
        let link = try link(pair, version, ids) { $0.customVerification = recorder.verification }
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none))
        #expect(server.last == Step(1, .none))
        #expect(!client.contains(Step(-1, .wantRetryVerify)))
        #expect(recorder.calls == 1)
        let request = try #require(recorder.request)
        #expect(request.peerCertificates == [der(ids.server.certificateChainPEM)], "the chain as sent, leaf first")
        #expect(request.role == .client)
        #expect(request.serverName == "localhost")
        #expect(request.defaultVerificationError == nil, "TLSKit's own verification passed")
        #expect(link.client.validatedCertificateChain == [[1, 2, 3]])
        #expect(link.client.peerVerification == .customVerification(hostnameVerified: true))
    }

    @Test("client: answer later from another thread: -1 .wantRetryVerify while pending, nothing sent, then 1",
          arguments: pairs, versions)
    func acceptLater(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        let recorder = Recorder()
        let link = try link(pair, version, ids) { $0.customVerification = recorder.verification }
        let (client, _) = link.handshake()
        #expect(client.last == Step(-1, .wantRetryVerify))
        #expect(link.client.isVerificationPending)
        // Calling again before the answer: the same result, and the library is not run.
        let outgoing = link.clientWire.pendingOutgoing
        #expect(link.client.step { $0.doHandshake() } == Step(-1, .wantRetryVerify))
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRetryVerify))
        #expect(link.clientWire.pendingOutgoing == outgoing)
        #expect(recorder.calls == 1)

        try answerFromAnotherThread(try #require(recorder.completion), .accept(), waking: link.client)
        let (clientAfter, serverAfter) = link.handshake()
        #expect(clientAfter.last == Step(1, .none))
        #expect(serverAfter.last == Step(1, .none))
        #expect(recorder.calls == 1, "asked once per handshake, also when the library re-runs its verification")
        // A second answer changes nothing.
        #expect(recorder.completion?.complete(.reject(.other)) == false)
        #expect(recorder.completion?.verdict == .accept())
        #expect(link.client.step { $0.doHandshake() } == Step(1, .none))
        // Data flows.
        #expect(link.client.write(Array("ping".utf8)) == 4)
        link.exchange()
        #expect(link.server.readStep().1 == Array("ping".utf8))
    }

    static let rejections: [(TLSError.VerificationFailure, TLSAlert)] = [
        (.unknownIssuer, .unknownCA), (.expired, .certificateExpired), (.revoked, .certificateRevoked),
        (.invalidPurpose, .unsupportedCertificate), (.badSignature, .decryptError), (.other, .badCertificate),
    ]

    @Test("client: a later rejection fails with its category; the server receives that alert",
          arguments: pairs, versions)
    func rejectLater(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        for (failure, alert) in Self.rejections {
            let recorder = Recorder()
            let link = try link(pair, version, ids) { $0.customVerification = recorder.verification }
            #expect(link.handshake().client.last == Step(-1, .wantRetryVerify))
            try answerFromAnotherThread(try #require(recorder.completion), .reject(failure), waking: link.client)
            let (client, server) = link.handshake()
            let context = "\(failure): \(String(describing: link.client.lastError)) / \(String(describing: link.server.lastError))"
            #expect(client.last == Step(-1, .ssl), "\(context)")
            #expect(link.client.lastError?.code == .certificateVerificationFailed, "\(context)")
            #expect(link.client.lastError?.verificationFailure == failure, "\(context)")
            #expect(link.client.lastError?.alert == alert, "\(context)")
            #expect(server.last == Step(-1, .ssl), "\(context)")
            #expect(link.server.lastError?.code == .alertReceived, "\(context)")
            #expect(link.server.lastError?.alert == alert, "the alert the server read: \(context)")
            // Sticky, like every fatal result.
            #expect(link.client.step { $0.doHandshake() } == Step(-1, .ssl))
        }
    }

    @Test("client: the callback accepts a chain TLSKit's own verification failed (untrusted, self-signed)",
          arguments: pairs, versions)
    func overridesTheDefaultVerdict(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        let recorder = Recorder()
        let link = try link(pair, version, ids, trusted: false) { $0.customVerification = recorder.verification }
        #expect(link.handshake().client.last == Step(-1, .wantRetryVerify))
        let request = try #require(recorder.request)
        #expect(request.defaultVerificationError?.code == .certificateVerificationFailed)
        #expect(request.defaultVerificationError?.verificationFailure == .selfSigned)
        try answerFromAnotherThread(try #require(recorder.completion), .accept(), waking: link.client)
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none))
        #expect(server.last == Step(1, .none))
        #expect(link.client.peerVerification == .customVerification(hostnameVerified: true))

        // Without the callback the same configuration fails: the override is the callback's.
        let plain = try self.link(pair, version, ids, trusted: false)
        #expect(plain.handshake().client.last == Step(-1, .ssl))
        #expect(plain.client.lastError?.verificationFailure == .selfSigned)
    }

    @Test("client: the host name is still checked after the callback accepts", arguments: pairs, versions)
    func hostnameAfterAccept(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        let recorder = Recorder(answerAtOnce: .accept())
        let link = try link(pair, version, ids, serverName: "other.example") { $0.customVerification = recorder.verification }
        let (client, server) = link.handshake()
        #expect(recorder.request?.defaultVerificationError == nil, "the chain itself verifies; the name is not part of it")
        #expect(recorder.request?.serverName == "other.example")
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.verificationFailure == .hostnameMismatch)
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.alert == .badCertificate)

        // With .noHostnameVerification the callback alone decides.
        let free = try self.link(pair, version, ids, serverName: "other.example") {
            $0.customVerification = Recorder(answerAtOnce: .accept()).verification
            $0.certificateVerification = .noHostnameVerification
        }
        #expect(free.handshake().client.last == Step(1, .none))
        #expect(free.client.peerVerification == .customVerification(hostnameVerified: false))
    }

    @Test("per connection: TLSConnection.customVerification overrides the configuration's", arguments: allBackends)
    func perConnection(backend: Backend) throws {
        let pair = Pair(client: backend, server: backend)
        let ids = try Identities(pair)
        let configured = Recorder(answerAtOnce: .accept())
        let own = Recorder(answerAtOnce: .reject(.pinMismatch))
        let configuredVerification = configured.verification
        let link = try link(pair, .tls13, ids) { $0.customVerification = configuredVerification }
        #expect(link.client.customVerification == configuredVerification)
        link.client.customVerification = own.verification
        let (client, server) = link.handshake()
        #expect(configured.calls == 0)
        #expect(own.calls == 1)
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.verificationFailure == .pinMismatch)
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.alert == .badCertificate)
    }

    // MARK: - Server role (mutual TLS)

    @Test("server: the client certificate judged by the callback, at once or later; accept and reject",
          arguments: pairs, versions)
    func serverJudgesTheClient(pair: Pair, version: TLSVersion) throws {
        let ids = try Identities(pair)
        // At once: every backend.
        for (verdict, expected) in [(TLSVerificationVerdict.accept(), nil), (.reject(.unknownIssuer), TLSAlert.unknownCA)] {
            let recorder = Recorder(answerAtOnce: verdict)
            let link = try link(pair, version, ids, mutual: true) { _ in } server: { $0.customVerification = recorder.verification }
            var (client, server) = link.handshake()
            #expect(recorder.request?.peerCertificates == [der(ids.client.certificateChainPEM)])
            #expect(recorder.request?.role == .server)
            #expect(recorder.request?.defaultVerificationError == nil)
            try expectServerVerdict(link, &client, &server, version: version, alert: expected, failure: .unknownIssuer)
        }
        // Later.
        for (verdict, expected) in [(TLSVerificationVerdict.accept(), nil), (.reject(.revoked), TLSAlert.certificateRevoked)] {
            let recorder = Recorder()
            let link = try link(pair, version, ids, mutual: true) { _ in } server: { $0.customVerification = recorder.verification }
            let first = link.handshake()
            if pair.server.id == .openSSL {
                // OpenSSL 3.0 cannot suspend a server's handshake (SSL_set_retry_verify is
                // client-only): refused loudly, never waited for silently.
                #expect(first.server.last == Step(-1, .ssl))
                #expect(link.server.lastError?.verificationFailure == .other)
                #expect(link.server.lastError?.message.contains("cannot suspend") == true)
                continue
            }
            #expect(first.server.last == Step(-1, .wantRetryVerify))
            #expect(link.server.step { $0.accept() } == Step(-1, .wantRetryVerify))
            try answerFromAnotherThread(try #require(recorder.completion), verdict, waking: link.server)
            var (client, server) = link.handshake()
            if version == .tls13 { client = first.client + client }  // the client may have finished before
            try expectServerVerdict(link, &client, &server, version: version, alert: expected, failure: .revoked)
        }
    }

    /// Server verdict checks: accepted → both 1; rejected → the server fails with the
    /// category, the client reads the alert (TLS 1.3: on its first read, as it had finished).
    func expectServerVerdict(_ link: MemoryLink, _ client: inout [Step], _ server: inout [Step],
                             version: TLSVersion, alert: TLSAlert?, failure: TLSError.VerificationFailure) throws {
        let context = "\(version): \(String(describing: link.server.lastError)) / \(String(describing: link.client.lastError))"
        guard let alert else {
            #expect(server.last == Step(1, .none), "\(context)")
            #expect(client.last(where: { $0.code != .wantRead }) == Step(1, .none), "\(context)")
            #expect(link.server.peerVerification == .customVerification(hostnameVerified: false))
            return
        }
        #expect(server.last == Step(-1, .ssl), "\(context)")
        #expect(link.server.lastError?.code == .certificateVerificationFailed, "\(context)")
        #expect(link.server.lastError?.verificationFailure == failure, "\(context)")
        #expect(link.server.lastError?.alert == alert, "\(context)")
        var clientLast = client.last
        if version == .tls13 {
            #expect(client.contains(Step(1, .none)), "\(context)")
            link.exchange()
            clientLast = link.client.readStep().0
        }
        #expect(clientLast == Step(-1, .ssl), "\(context)")
        #expect(link.client.lastError?.code == .alertReceived, "\(context)")
        #expect(link.client.lastError?.alert == alert, "the alert the client read: \(context)")
    }

    // MARK: - Blocking sockets and the Swift-style call

    @Test("TLSSocket.connect waits for an answer given later by another thread", arguments: allBackends)
    func blockingSocket(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let listener = try TLSListener()
        let serverContext = try fixture.serverContext()
        let server = Background { () throws -> [UInt8] in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(30))
            defer { socket.close() }
            return try socket.read()
        }
        let answered = Locked<Thread?>(nil)
        let clientContext = try fixture.clientContext {
            $0.customVerification = TLSCustomVerification { _, completion in
                let thread = Thread { completion(.accept()) }
                answered.withLock { $0 = thread }
                thread.start()
            }
        }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                           serverName: "localhost", timeout: .seconds(30))
        defer { socket.close() }
        #expect(socket.connection.peerVerification == .customVerification(hostnameVerified: true))
        try socket.write(Array("hello".utf8))
        #expect(try server.join() == Array("hello".utf8))
        #expect(answered.withLock { $0 } != nil)
    }

    @Test("handshake() reports .wantRetryVerify while the answer is pending", arguments: allBackends)
    func swiftStyle(backend: Backend) throws {
        let pair = Pair(client: backend, server: backend)
        let recorder = Recorder()
        let link = try link(pair, .tls13, try Identities(pair)) { $0.customVerification = recorder.verification }
        var progress = try link.client.handshake()
        for _ in 0..<20 where progress != .wantRetryVerify {
            link.exchange()
            _ = try? link.server.handshake()
            link.exchange()
            progress = try link.client.handshake()
        }
        #expect(progress == .wantRetryVerify)
        recorder.completion?(.reject(.other))
        #expect(throws: TLSError.self) { try link.client.handshake() }
        #expect(link.client.lastError?.verificationFailure == .other)
    }
}
