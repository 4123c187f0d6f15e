// The interop matrix: TLSKitNIO against swift-nio-ssl's NIOSSLHandler (BoringSSL) in both
// directions, on both TLSKit backends, with each side pinned to TLS 1.2 or TLS 1.3 (both
// sides, or one side with the other open). Every case asserts both ends: the negotiated
// version and ALPN on success; on a verification failure, the exact error of the side
// that failed and exactly what the other side received (NIOSSL: the BoringSSL reason,
// e.g. TLSV1_ALERT_UNKNOWN_CA; TLSKit: the alert in its TLSError). Loopback sockets in
// one process, no sleeps. Close and half-close behaviour is NIOSSLInteropTests' concern.
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO

/// Which implementation plays which role.
enum InteropDirection: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case tlsKitClient = "TLSKitNIO client → NIOSSL server"
    case nioSSLClient = "NIOSSL client → TLSKitNIO server"
    var testDescription: String { rawValue }
}

/// What one side of the matrix allows: a single version, or 1.2 and 1.3.
enum VersionPin: String, Sendable {
    case tls12 = "1.2", tls13 = "1.3", open = "1.2–1.3"
}

/// One cell of the version axis: the client's pin and the server's.
struct VersionPinning: CustomStringConvertible, Sendable {
    let client: VersionPin
    let server: VersionPin
    var description: String { "client \(client.rawValue), server \(server.rawValue)" }
    /// The version the pair negotiates.
    var negotiated: String { client == .tls12 || server == .tls12 ? "1.2" : "1.3" }

    /// Both sides pinned to each version, and each side pinned with the other open.
    static let all: [VersionPinning] = [
        .init(client: .tls12, server: .tls12), .init(client: .tls13, server: .tls13),
        .init(client: .tls12, server: .open), .init(client: .open, server: .tls12),
        .init(client: .tls13, server: .open), .init(client: .open, server: .tls13),
    ]
}

/// The situations of the matrix.
enum InteropScenario: String, CaseIterable, CustomTestStringConvertible, Sendable {
    /// Mutual TLS that succeeds: version and ALPN on both ends.
    case success = "handshake succeeds"
    /// The client asked for a name the server's certificate does not carry.
    case wrongHostName = "client: wrong host name"
    /// The client does not trust the server's certificate.
    case untrustedServer = "client: untrusted CA"
    /// The server does not trust the client's certificate.
    case untrustedClient = "server: untrusted client CA"
    /// The server requires a client certificate; the client has none.
    case missingClientCertificate = "server: client certificate missing"
    var testDescription: String { rawValue }
}

/// What one end of a connection saw.
struct InteropEnd: CustomStringConvertible, Sendable {
    /// "1.2" / "1.3" once the handshake completed, with the ALPN value ("-" for none).
    var version: String?
    var alpn: String?
    /// Every error that reached the end of the pipeline, described.
    var errors: [String] = []
    /// The first TLSKit error, for TLSKit ends.
    var tlsError: TLSError?
    var description: String { "version \(version ?? "-"), alpn \(alpn ?? "-"), errors \(errors)" }

    /// BoringSSL's reasons in the first error (`OPENSSL_internal:REASON`), or its description.
    var nioSSLReasons: [String] {
        guard let first = errors.first else { return [] }
        let reasons = first.components(separatedBy: "OPENSSL_internal:").dropFirst().map {
            String($0.prefix { $0.isUppercase || $0.isNumber || $0 == "_" })
        }
        return reasons.isEmpty ? [first] : reasons
    }
}

/// Records one end: handshake result (version from the handler, ALPN from the event),
/// errors, and when the channel closed. The client end sends "ping" once its handshake
/// completes and closes when "pong" comes back; the server end answers "ping".
final class InteropProbe: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state = NIOLockedValueBox(InteropEnd())
    private let isClient: Bool
    private let version: @Sendable (ChannelHandlerContext) -> String?
    let closed: EventLoopPromise<Void>

    init(isClient: Bool, on eventLoop: any EventLoop, version: @escaping @Sendable (ChannelHandlerContext) -> String?) {
        self.isClient = isClient
        self.version = version
        closed = eventLoop.makePromise()
    }

    var end: InteropEnd { state.withLockedValue { $0 } }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            let version = version(context)
            state.withLockedValue { $0.version = version; $0.alpn = negotiated ?? "-" }
            if isClient { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "ping")), promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: unwrapInboundIn(data))
        if isClient {
            if text == "pong" { context.close(promise: nil) }
        } else if text == "ping" {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "pong")), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        state.withLockedValue {
            $0.errors.append(String(describing: error))
            if $0.tlsError == nil, let error = error as? TLSError { $0.tlsError = error }
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(())
        context.fireChannelInactive()
    }
}

/// The certificates of one test case, made by `openssl req` at run time (BoringSSL takes
/// only CA certificates as trust roots): the server's (localhost, 127.0.0.1), the
/// client's, and a stranger trusted by nobody.
/// `nameOnlyServer` carries the DNS name alone: NIOSSL accepts a certificate whose IP
/// address matches the peer's socket address whatever `serverHostname` says, so a
/// wrong-host-name case needs a certificate without 127.0.0.1.
struct InteropIdentities: Sendable {
    let server: TLSIdentity
    let nameOnlyServer: TLSIdentity
    let client: TLSIdentity
    let stranger: TLSIdentity
    static func make() async throws -> InteropIdentities {
        InteropIdentities(server: try await opensslSelfSignedIdentity(),
                          nameOnlyServer: try await opensslSelfSignedIdentity(subjectAltName: "DNS:localhost"),
                          client: try await opensslSelfSignedIdentity(),
                          stranger: try await opensslSelfSignedIdentity())
    }
}

/// Builds the two handlers for one case and runs one connection over loopback.
struct InteropCase {
    let direction: InteropDirection
    let backend: Backend
    let scenario: InteropScenario
    let pinning: VersionPinning
    let identities: InteropIdentities

    static let serverALPN = ["h2", "http/1.1"]
    static let clientALPN = ["x-unknown", "h2"]

    /// What the client trusts, presents, and the name it asks for.
    private var serverPresents: TLSIdentity { scenario == .wrongHostName ? identities.nameOnlyServer : identities.server }
    private var clientTrusts: TLSIdentity {
        scenario == .untrustedServer ? identities.stranger : scenario == .wrongHostName ? identities.nameOnlyServer : identities.server
    }
    private var clientPresents: TLSIdentity? {
        scenario == .missingClientCertificate ? nil : scenario == .untrustedClient ? identities.stranger : identities.client
    }
    private var hostName: String { scenario == .wrongHostName ? "other.example" : "localhost" }

    private func tlsKitVersions(_ pin: VersionPin, _ configuration: inout TLSKit.TLSConfiguration) {
        switch pin {
        case .tls12: configuration.minimumTLSVersion = .tls12; configuration.maximumTLSVersion = .tls12
        case .tls13: configuration.minimumTLSVersion = .tls13; configuration.maximumTLSVersion = .tls13
        case .open: configuration.minimumTLSVersion = .tls12; configuration.maximumTLSVersion = .tls13
        }
    }

    private func nioSSLVersions(_ pin: VersionPin, _ configuration: inout NIOSSL.TLSConfiguration) {
        switch pin {
        case .tls12: configuration.minimumTLSVersion = .tlsv12; configuration.maximumTLSVersion = .tlsv12
        case .tls13: configuration.minimumTLSVersion = .tlsv13; configuration.maximumTLSVersion = .tlsv13
        case .open: configuration.minimumTLSVersion = .tlsv12; configuration.maximumTLSVersion = .tlsv13
        }
    }

    private static func nioSSLCertificate(_ identity: TLSIdentity) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: Array(identity.certificateChainPEM.utf8), format: .pem)
    }

    private static func nioSSLKey(_ identity: TLSIdentity) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem)
    }

    private static func tlsKitVersion(_ context: ChannelHandlerContext) -> String? {
        switch try? context.pipeline.syncOperations.tlsKitConnectionInfo()?.negotiatedVersion {
        case .tls12?: return "1.2"
        case .tls13?: return "1.3"
        default: return nil
        }
    }

    private static func nioSSLVersion(_ context: ChannelHandlerContext) -> String? {
        switch try? context.pipeline.syncOperations.nioSSL_tlsVersion() {
        case .tlsv12?: return "1.2"
        case .tlsv13?: return "1.3"
        default: return nil
        }
    }

    /// The handler factories and version probes: (server, client).
    private func handlers() throws -> (server: @Sendable () throws -> any ChannelHandler, serverVersion: @Sendable (ChannelHandlerContext) -> String?,
                                       client: @Sendable () throws -> any ChannelHandler, clientVersion: @Sendable (ChannelHandlerContext) -> String?) {
        let server = serverPresents, trusts = clientTrusts, presents = clientPresents, client = identities.client
        let host = hostName
        switch direction {
        case .tlsKitClient:
            var serverConfiguration = NIOSSL.TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try Self.nioSSLCertificate(server))], privateKey: .privateKey(try Self.nioSSLKey(server)))
            serverConfiguration.applicationProtocols = Self.serverALPN
            serverConfiguration.certificateVerification = .noHostnameVerification  // requires a client certificate
            serverConfiguration.trustRoots = .certificates([try Self.nioSSLCertificate(client)])
            nioSSLVersions(pinning.server, &serverConfiguration)
            let serverContext = try NIOSSLContext(configuration: serverConfiguration)
            var clientConfiguration = TLSKit.TLSConfiguration.makeClientConfiguration()
            clientConfiguration.trustRoots = .certificates([.pem(trusts.certificateChainPEM)])
            clientConfiguration.applicationProtocols = Self.clientALPN
            if let presents {
                clientConfiguration.certificateChain = .pem(presents.certificateChainPEM)
                clientConfiguration.privateKey = .pem(presents.privateKeyPEM)
            }
            tlsKitVersions(pinning.client, &clientConfiguration)
            let clientContext = try backend.type.makeContext(clientConfiguration)
            return ({ NIOSSLServerHandler(context: serverContext) }, { Self.nioSSLVersion($0) },
                    { try TLSKitClientHandler(context: clientContext, serverHostname: host) }, { Self.tlsKitVersion($0) })
        case .nioSSLClient:
            var serverConfiguration = TLSKit.TLSConfiguration.makeServerConfiguration(identity: server)
            serverConfiguration.applicationProtocols = Self.serverALPN
            serverConfiguration.clientAuthentication = .required
            serverConfiguration.trustRoots = .certificates([.pem(client.certificateChainPEM)])
            tlsKitVersions(pinning.server, &serverConfiguration)
            let serverContext = try backend.type.makeContext(serverConfiguration)
            var clientConfiguration = NIOSSL.TLSConfiguration.makeClientConfiguration()
            clientConfiguration.trustRoots = .certificates([try Self.nioSSLCertificate(trusts)])
            clientConfiguration.applicationProtocols = Self.clientALPN
            if let presents {
                clientConfiguration.certificateChain = [.certificate(try Self.nioSSLCertificate(presents))]
                clientConfiguration.privateKey = .privateKey(try Self.nioSSLKey(presents))
            }
            nioSSLVersions(pinning.client, &clientConfiguration)
            let clientContext = try NIOSSLContext(configuration: clientConfiguration)
            return ({ TLSKitServerHandler(context: serverContext) }, { Self.tlsKitVersion($0) },
                    { try NIOSSLClientHandler(context: clientContext, serverHostname: host) }, { Self.nioSSLVersion($0) })
        }
    }

    /// One connection; returns what each end saw once both channels have closed.
    func run() async throws -> (client: InteropEnd, server: InteropEnd) {
        let (serverHandler, serverVersion, clientHandler, clientVersion) = try handlers()
        let group = MultiThreadedEventLoopGroup.singleton
        let serverLoop = group.next(), clientLoop = group.next()
        let accepted = serverLoop.makePromise(of: InteropProbe.self)
        let listener = try await ServerBootstrap(group: serverLoop)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let probe = InteropProbe(isClient: false, on: channel.eventLoop, version: serverVersion)
                    try channel.pipeline.syncOperations.addHandler(try serverHandler())
                    try channel.pipeline.syncOperations.addHandler(probe)
                    accepted.succeed(probe)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { listener.close(promise: nil) }
        let clientProbe = InteropProbe(isClient: true, on: clientLoop, version: clientVersion)
        _ = try await ClientBootstrap(group: clientLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try clientHandler())
                    try channel.pipeline.syncOperations.addHandler(clientProbe)
                }
            }
            .connect(host: "127.0.0.1", port: listener.localAddress!.port!).get()
        let server = try await accepted.futureResult.get()
        try await clientProbe.closed.futureResult.get()
        try await server.closed.futureResult.get()
        return (clientProbe.end, server.end)
    }
}

@Suite("TLSKitNIO ↔ NIOSSLHandler: the version × verification matrix", .timeLimit(.minutes(5)))
struct NIOSSLInteropMatrixTests {
    /// One (direction, backend) pair of the matrix.
    struct Pair: CustomTestStringConvertible, Sendable {
        let direction: InteropDirection
        let backend: Backend
        var testDescription: String { "\(direction.rawValue) on \(backend.name)" }
        static let all = InteropDirection.allCases.flatMap { direction in allBackends.map { Pair(direction: direction, backend: $0) } }
    }

    /// Every version pinning of one (direction, backend, scenario), asserting both ends.
    @Test("each side pinned to TLS 1.2 / 1.3, both or one", arguments: Pair.all, InteropScenario.allCases)
    func matrix(pair: Pair, scenario: InteropScenario) async throws {
        let (direction, backend) = (pair.direction, pair.backend)
        let identities = try await InteropIdentities.make()
        for pinning in VersionPinning.all {
            let label = "\(direction.rawValue), \(backend.name), \(scenario.rawValue), \(pinning)"
            let (client, server) = try await InteropCase(direction: direction, backend: backend, scenario: scenario,
                                                         pinning: pinning, identities: identities).run()
            let version = pinning.negotiated
            let (tlsKit, nioSSL) = direction == .tlsKitClient ? (client, server) : (server, client)
            switch scenario {
            case .success:
                #expect(client.version == version && server.version == version, "\(label): client \(client); server \(server)")
                #expect(client.alpn == "h2" && server.alpn == "h2", "\(label): client \(client); server \(server)")
                #expect(client.errors.isEmpty && server.errors.isEmpty, "\(label): client \(client); server \(server)")
            default:
                let expected = Self.expectation(direction: direction, scenario: scenario, version: version)
                let context = "\(label): TLSKit \(tlsKit); NIOSSL \(nioSSL)"
                if expected.tlsKitCode == nil {
                    // Nothing reached TLSKit but a completed handshake and the close.
                    #expect(tlsKit.errors.isEmpty && tlsKit.version == version, "\(context)")
                }
                #expect(tlsKit.tlsError?.code == expected.tlsKitCode, "\(context)")
                #expect(tlsKit.tlsError?.verificationFailure == expected.tlsKitFailure, "\(context)")
                #expect(tlsKit.tlsError?.alert == expected.tlsKitAlert, "\(context)")
                #expect(nioSSL.nioSSLReasons == expected.nioSSLReasons, "\(context)")
            }
        }
    }

    /// What each end reports when `scenario` fails at `version`: the side that judges
    /// fails with its verdict and sends the alert; the other side reports that alert.
    struct Expectation {
        let tlsKitCode: TLSError.Code?
        let tlsKitFailure: TLSError.VerificationFailure?
        let tlsKitAlert: TLSAlert?
        let nioSSLReasons: [String]
    }

    static func expectation(direction: InteropDirection, scenario: InteropScenario, version: String) -> Expectation {
        switch (direction, scenario) {
        // TLSKit judges: its verdict and alert; BoringSSL names the alert it read.
        case (.tlsKitClient, .wrongHostName):
            return Expectation(tlsKitCode: .certificateVerificationFailed, tlsKitFailure: .hostnameMismatch,
                               tlsKitAlert: .badCertificate, nioSSLReasons: ["SSLV3_ALERT_BAD_CERTIFICATE"])
        case (.tlsKitClient, .untrustedServer):
            return Expectation(tlsKitCode: .certificateVerificationFailed, tlsKitFailure: .selfSigned,
                               tlsKitAlert: .unknownCA, nioSSLReasons: ["TLSV1_ALERT_UNKNOWN_CA"])
        case (.nioSSLClient, .untrustedClient):
            return Expectation(tlsKitCode: .certificateVerificationFailed, tlsKitFailure: .selfSigned,
                               tlsKitAlert: .unknownCA, nioSSLReasons: ["TLSV1_ALERT_UNKNOWN_CA"])
        case (.nioSSLClient, .missingClientCertificate):
            return version == "1.3"
                ? Expectation(tlsKitCode: .certificateVerificationFailed, tlsKitFailure: .noCertificate,
                              tlsKitAlert: .certificateRequired, nioSSLReasons: ["TLSV1_ALERT_CERTIFICATE_REQUIRED"])
                : Expectation(tlsKitCode: .certificateVerificationFailed, tlsKitFailure: .noCertificate,
                              tlsKitAlert: .handshakeFailure, nioSSLReasons: ["SSLV3_ALERT_HANDSHAKE_FAILURE"])
        // BoringSSL judges: its reason; TLSKit names the alert it read.
        // NIOSSL checks the host name itself once BoringSSL's handshake has completed: it
        // fails with its own error and closes (close_notify, no alert); the TLSKit server
        // saw a completed handshake and a clean close.
        case (.nioSSLClient, .wrongHostName):
            return Expectation(tlsKitCode: nil, tlsKitFailure: nil, tlsKitAlert: nil, nioSSLReasons: [
                "NIOSSLExtraError.failedToValidateHostname: Couldn't find other.example in certificate from peer"])
        case (.nioSSLClient, .untrustedServer):
            return Expectation(tlsKitCode: .alertReceived, tlsKitFailure: nil,
                               tlsKitAlert: .unknownCA, nioSSLReasons: ["CERTIFICATE_VERIFY_FAILED"])
        case (.tlsKitClient, .untrustedClient):
            return Expectation(tlsKitCode: .alertReceived, tlsKitFailure: nil,
                               tlsKitAlert: .unknownCA, nioSSLReasons: ["CERTIFICATE_VERIFY_FAILED"])
        case (.tlsKitClient, .missingClientCertificate):
            return Expectation(tlsKitCode: .alertReceived, tlsKitFailure: nil,
                               tlsKitAlert: version == "1.3" ? .certificateRequired : .handshakeFailure,
                               nioSSLReasons: ["PEER_DID_NOT_RETURN_A_CERTIFICATE"])
        case (_, .success):
            preconditionFailure("no failure expected")
        }
    }
}
