// Every capability is enforced by the core: an option, a per-connection setting or a
// call that needs a capability the backend lacks fails loudly with `unsupported`, naming
// the option and the backend, before the backend is involved. The backends here are the
// scripted one ([.alpn, .serverNameIndication]) and a bare one with no capability at all.
import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore

/// A backend with no capability: the scripted engine, and nothing optional.
enum BareBackend: TLSBackend {
    static let id = TLSBackendID("Bare")
    static let libraryVersion = "Bare 1.0 (scripted)"
    static let capabilities: TLSCapabilities = []

    static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        throw TLSError(.badCertificate, "the bare backend parses no certificates", backend: id)
    }

    static func generateSelfSignedIdentity(commonName: String, subjectAlternativeNames: [String], validityDays: Int) throws -> TLSIdentity {
        throw TLSError(.internalError, "never called: the bare backend lacks the selfSignedIdentity capability", backend: id)
    }

    static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine {
        let script = ScriptedBackend.script ?? EngineScript()
        script.contextsMade += 1
        return ScriptedContextEngine(script: script)
    }
}

@Suite("Capabilities: every one is enforced by the core", .timeLimit(.minutes(2)))
struct CapabilityTests {
    /// A client configuration that reaches makeContext on any scripted backend.
    static func client(_ change: (inout TLSConfiguration) -> Void) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.serverName = "127.0.0.1"
        change(&configuration)
        return configuration
    }

    static let identity = TLSIdentity(certificateChainPEM: "unused", privateKeyPEM: "unused")

    /// makeContext's verdict: the exact message, or nil when the backend was reached.
    func refusal<B: TLSBackend>(_ backend: B.Type, _ configuration: TLSConfiguration) -> String? {
        let script = EngineScript()
        do {
            _ = try ScriptedBackend.$script.withValue(script) { try backend.makeContext(configuration) }
            #expect(script.contextsMade == 1)
            return nil
        } catch let error as TLSError {
            #expect(error.code == .unsupported)
            #expect(error.backend == backend.id)
            #expect(script.contextsMade == 0)
            return error.message
        } catch {
            Issue.record("not a TLSError: \(error)")
            return "\(error)"
        }
    }

    @Test func configurationOptionsNeedTheirCapability() {
        let sni = TLSServerNameCredentials(serverNames: ["a.test"], credentials: [.certificateChain(.pem("x"), privateKey: .pem("y"))])
        let cases: [(TLSConfiguration, String)] = [
            (Self.client { $0.minimumTLSVersion = .tls13 }, "minimumTLSVersion TLSv1.3 is not supported by the Bare backend"),
            (Self.client { $0.applicationProtocols = ["h2"] }, "applicationProtocols is not supported by the Bare backend"),
            (Self.client { $0.serverName = "a.test" }, "serverName \"a.test\" (sent as SNI) is not supported by the Bare backend"),
            (Self.client { $0.serverNameCredentials = [sni] }, "serverNameCredentials is not supported by the Bare backend"),
            (Self.client { $0.clientAuthentication = .required }, "clientAuthentication is not supported by the Bare backend"),
            (Self.client { $0.clientAuthentication = .optional }, "clientAuthentication is not supported by the Bare backend"),
        ]
        for (configuration, message) in cases {
            #expect(refusal(BareBackend.self, configuration) == message)
        }
        // What the scripted backend has (ALPN, SNI) passes; what it lacks is refused.
        #expect(refusal(ScriptedBackend.self, Self.client { $0.applicationProtocols = ["h2"]; $0.serverName = "a.test" }) == nil)
        #expect(refusal(ScriptedBackend.self, Self.client { $0.serverNameCredentials = [sni] }) == nil)
        #expect(refusal(ScriptedBackend.self, Self.client { $0.minimumTLSVersion = .tls13 })
                == "minimumTLSVersion TLSv1.3 is not supported by the Scripted backend")
        #expect(refusal(ScriptedBackend.self, Self.client { $0.clientAuthentication = .required })
                == "clientAuthentication is not supported by the Scripted backend")
        // A range that allows TLS 1.2, and an IP address (never sent as SNI), need nothing.
        #expect(refusal(BareBackend.self, Self.client { _ in }) == nil)
    }

    /// Starts a client handshake on the bare backend: the result, the error, what the
    /// backend saw.
    func firstStep(_ configuration: TLSConfiguration, _ setUp: (TLSConnection) -> Void = { _ in })
        throws -> (Step, TLSError?, EngineScript) {
        let script = EngineScript()
        let context = try ScriptedBackend.$script.withValue(script) { try BareBackend.makeContext(configuration) }
        let connection = context.makeConnection()
        let pair = TLSMemoryPair()
        try connection.setTransport(.memory(pair))
        setUp(connection)
        let step = connection.step { $0.connect() }
        #expect(pair.pendingOutgoing == 0)
        return (step, connection.lastError, script)
    }

    @Test func perConnectionSettingsNeedTheirCapability() throws {
        // A DNS name given to the connection would be sent as SNI.
        let (sniStep, sniError, sniScript) = try firstStep(Self.client { _ in }) { $0.serverName = "a.test" }
        #expect(sniStep == Step(-1, .ssl))
        #expect(sniError?.code == .unsupported)
        #expect(sniError?.backend == BareBackend.id)
        #expect(sniError?.message == "serverName \"a.test\" (sent as SNI) is not supported by the Bare backend")
        #expect(sniScript.sessionsMade.isEmpty)

        // A client presenting a certificate is mutual TLS.
        let (certificateStep, certificateError, certificateScript) = try firstStep(Self.client {
            $0.certificateChain = .pem("x")
            $0.privateKey = .pem("y")
        })
        #expect(certificateStep == Step(-1, .ssl))
        #expect(certificateError?.code == .unsupported)
        #expect(certificateError?.message == "a client certificate (mutual TLS) is not supported by the Bare backend")
        #expect(certificateScript.sessionsMade.isEmpty)

        // With neither, the backend is reached.
        let (plainStep, _, plainScript) = try firstStep(Self.client { _ in })
        #expect(plainStep == Step(-1, .ssl))
        #expect(plainScript.calls == ["handshake"])
        #expect(plainScript.sessionsMade.count == 1)
    }

    @Test func selfSignedIdentityNeedsItsCapability() {
        let error = #expect(throws: TLSError.self) {
            try ScriptedBackend.makeSelfSignedIdentity(commonName: "a.test", subjectAlternativeNames: ["a.test"], validityDays: 1)
        }
        #expect(error?.code == .unsupported)
        #expect(error?.backend == ScriptedBackend.id)
        #expect(error?.message == "makeSelfSignedIdentity is not supported by the Scripted backend")
    }

    @Test func negotiatedGroupNeedsItsCapability() throws {
        let script = EngineScript()
        var configuration = Self.client { _ in }
        configuration.serverName = "fake.test"
        let context = try ScriptedBackend.$script.withValue(script) { try ScriptedBackend.makeContext(configuration) }
        let connection = context.makeConnection()
        try connection.setTransport(.memory(TLSMemoryPair()))
        script.handshake = [.status(.success(1))]
        #expect(connection.step { $0.connect() } == Step(1, .none))
        let error = #expect(throws: TLSError.self) { try connection.negotiatedGroup }
        #expect(error?.code == .unsupported)
        #expect(error?.backend == ScriptedBackend.id)
        #expect(error?.message == "negotiatedGroup is not supported by the Scripted backend")
    }

    @Test("the backends' negotiatedGroup, with the capability", arguments: allBackends)
    func negotiatedGroupWithTheCapability(backend: Backend) throws {
        let link = try MemoryLink(try Fixture(backend),
                                  client: { $0.keyExchangeGroups = ["x25519"] },
                                  server: { $0.keyExchangeGroups = ["x25519"] })
        #expect(try link.client.negotiatedGroup == nil)
        let steps = link.handshake()
        #expect(steps.client.last == Step(1, .none))
        #expect(steps.server.last == Step(1, .none))
        #expect(try link.client.negotiatedGroup == TLSGroup.named("x25519"))
        #expect(try link.server.negotiatedGroup == TLSGroup.named("x25519"))
    }
}
