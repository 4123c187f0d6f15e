public import TLSCore
public import Testing

/// One rule of the TLSKit contract (Docs/contract.md), checked against one backend: two
/// connections of that backend, in memory or over local sockets, and the exact results
/// the contract gives.
///
/// Made by ``TLSConformance/cases(for:identities:)``; a backend's test target runs each
/// one as an argument of a parameterized test:
///
/// ```swift
/// import Testing
/// import TLSKitConformance
/// import MyTLS
///
/// @Test(arguments: TLSConformance.cases(for: MyBackend.self))
/// func conformance(_ rule: TLSConformanceCase) async throws { try await rule.run() }
/// ```
///
/// A failed expectation inside ``run()`` is reported by swift-testing as an issue of the
/// calling test (at the line of the library that checks it, with the values compared);
/// a failed precondition throws.
public struct TLSConformanceCase: Sendable, CustomTestStringConvertible {
    /// The rule's stable identifier, `<area>.<rule>` with its parameters in brackets,
    /// e.g. `handshake.closeNotifyDuringHandshake` or `hostile.malformedRecord[server, TLS 1.3]`.
    public let rule: String
    /// What the rule asserts, in one sentence.
    public let summary: String
    /// The backend the case runs against.
    public let backend: any TLSBackend.Type
    /// The capabilities the case needs (it is generated only for a backend that has them);
    /// empty for a rule of the common contract.
    public let requiredCapabilities: TLSCapabilities

    let body: @Sendable () throws -> Void

    /// How the test report names the case: the backend and the rule.
    public var testDescription: String { "\(backend.id.name) \(rule)" }

    /// Runs the case: records every failed expectation on the current test and throws
    /// when a precondition of the case fails (a context that cannot be made, a tool that
    /// is missing).
    public func run() async throws {
        try body()
    }
}

/// The contract suite: every rule of the TLSKit contract that holds between two
/// connections of one backend, written by rule (a capability, or the set of results the
/// TLS RFCs allow), never by a backend's name.
public enum TLSConformance {
    /// Every case for `backend`: the rules of the common contract, the rules of each
    /// capability the backend declares, and, for each capability it lacks that an option
    /// needs, the case asserting that the option is refused (`TLSError` `.unsupported`).
    /// - Parameters:
    ///   - backend: the backend under test.
    ///   - identities: where the cases' certificates come from; by default the backend's
    ///     own generator when it has `.selfSignedIdentity`, else the `openssl` tool.
    public static func cases(for backend: any TLSBackend.Type,
                             identities: TLSConformanceIdentities = .automatic) -> [TLSConformanceCase] {
        let subject = Backend(type: backend, identities: identities)
        let capabilities = backend.capabilities
        return allRules.compactMap { rule -> TLSConformanceCase? in
            guard rule.applies(capabilities) else { return nil }
            return TLSConformanceCase(rule: rule.name, summary: rule.summary, backend: backend,
                                      requiredCapabilities: rule.requires, body: { try rule.body(subject) })
        }
    }

    /// Every rule, in a stable order.
    static var allRules: [ConformanceRule] {
        HandshakeContractTests.rules + DataContractTests.rules + ContractRowsTests.rules + MisuseTests.rules
            + HandshakeCloseNotifyTests.rules + SmallExchangeTests.rules + SocketTests.rules
            + HostileInputTests.rules + CapabilityRefusalTests.rules
    }
}

/// One rule of the suite, before it is bound to a backend.
struct ConformanceRule: Sendable {
    let name: String
    let summary: String
    /// Capabilities the backend must have.
    let requires: TLSCapabilities
    /// Capabilities the backend must lack (the refusal cases).
    let requiresAbsent: TLSCapabilities
    let body: @Sendable (Backend) throws -> Void

    init(_ name: String, _ summary: String, requires: TLSCapabilities = [], requiresAbsent: TLSCapabilities = [],
         _ body: @escaping @Sendable (Backend) throws -> Void) {
        self.name = name
        self.summary = summary
        self.requires = requires
        self.requiresAbsent = requiresAbsent
        self.body = body
    }

    func applies(_ capabilities: TLSCapabilities) -> Bool {
        capabilities.isSuperset(of: requires) && capabilities.isDisjoint(with: requiresAbsent)
    }
}
