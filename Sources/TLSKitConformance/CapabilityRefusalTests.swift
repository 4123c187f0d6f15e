import Testing
import TLSCore

/// Options that need a capability: a backend that declares it accepts the option (a
/// context is made and a handshake with it completes), and a backend that lacks it
/// refuses the option at context creation, loudly — `TLSError` `.unsupported`, from that
/// backend, naming the option (DESIGN.md §2: "an unsupported option fails loudly at
/// context creation ... never silently ignored").
struct CapabilityRefusalTests {
    /// One option, the capability it needs, and its name in the refusal.
    struct Option: Sendable {
        let name: String
        let capability: TLSCapabilities
        let capabilityName: String
        let apply: @Sendable (inout TLSConfiguration) -> Void
    }

    static let options: [Option] = [
        Option(name: "applicationProtocols", capability: .alpn, capabilityName: "alpn") { $0.applicationProtocols = ["h2"] },
        Option(name: "keyLogger", capability: .keyLogging, capabilityName: "keyLogging") {
            $0.keyLogger = TLSKeyLogger { _ in }
        },
        Option(name: "cipherSuites", capability: .cipherSuiteSelection, capabilityName: "cipherSuiteSelection") {
            $0.cipherSuites = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
        },
        Option(name: "keyExchangeGroups", capability: .groupSelection, capabilityName: "groupSelection") {
            $0.keyExchangeGroups = ["secp256r1"]
        },
        // The server's own identity, chosen again by the selector: the backend loads it
        // (prepareServerCredentials) and puts it on the session (useServerCredentials).
        Option(name: "serverIdentitySelector", capability: .serverIdentitySelection, capabilityName: "serverIdentitySelection") {
            let (chain, key) = ($0.certificateChain, $0.privateKey)
            $0.serverIdentitySelector = .immediate { _ in
                guard let chain, let key else { return .defaultIdentity }
                return .credentials([.certificateChain(chain, privateKey: key)])
            }
        },
    ]

    /// With the capability: both ends take the option and the handshake completes.
    func accepted(backend: Backend, option: Option) throws {
        let link = try MemoryLink(Fixture(backend), client: option.apply, server: option.apply)
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none), "\(String(describing: link.client.lastError))")
        #expect(server.last == Step(1, .none), "\(String(describing: link.server.lastError))")
        if option.capability == .alpn {
            #expect(link.client.negotiatedApplicationProtocol == "h2")
        }
    }

    /// Without it: `makeContext` throws `.unsupported` from this backend, naming the option,
    /// for a client and a server configuration alike.
    func refused(backend: Backend, option: Option) throws {
        let fixture = try Fixture(backend)
        for var configuration in [fixture.clientConfiguration, fixture.serverConfiguration] {
            option.apply(&configuration)
            let error = #expect(throws: TLSError.self) { try backend.type.makeContext(configuration) }
            #expect(error?.code == .unsupported, "\(String(describing: error))")
            #expect(error?.backend == backend.id)
            #expect(error?.message.contains(option.name) == true, "\(String(describing: error))")
        }
    }

    /// This file's rules: per option, `accepted` where the capability is declared,
    /// `refused` where it is not.
    static let rules: [ConformanceRule] = options.flatMap { option in
        [ConformanceRule("capability.\(option.capabilityName)[accepted]",
                         "with .\(option.capabilityName), \(option.name) is accepted and the handshake completes",
                         requires: option.capability) { try CapabilityRefusalTests().accepted(backend: $0, option: option) },
         ConformanceRule("capability.\(option.capabilityName)[refused]",
                         "without .\(option.capabilityName), \(option.name) is refused: TLSError .unsupported naming it",
                         requiresAbsent: option.capability) { try CapabilityRefusalTests().refused(backend: $0, option: option) }]
    }
}
