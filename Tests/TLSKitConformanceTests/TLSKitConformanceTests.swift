import Testing
import TLSKit
import TLSKitConformance
import TLSKitTestSupport

/// The conformance suite against every backend built into this package: what a backend's
/// own test target writes, plus `.sharesProcess` (this package's suites that measure the
/// process run alone).
@Suite("Conformance", .timeLimit(.minutes(5)), .sharesProcess)
struct TLSKitConformanceTests {
    @Test("contract rule", arguments: TLSBuiltInBackends.available.flatMap { TLSConformance.cases(for: $0) })
    func conformance(_ rule: TLSConformanceCase) async throws {
        try await rule.run()
    }

    /// The path a backend without `.selfSignedIdentity` takes: the leaf made by the
    /// `openssl` tool, for the handshake rules.
    @Test("contract rule, certificates from the openssl tool",
          arguments: TLSBuiltInBackends.available.flatMap {
              TLSConformance.cases(for: $0, identities: .openSSLTool).filter { $0.rule.hasPrefix("handshake.") }
          })
    func conformanceWithToolIdentities(_ rule: TLSConformanceCase) async throws {
        try await rule.run()
    }
}
