// The conformance suite over FakeTLS, unchanged: what any backend's test target writes.
import Testing
import TLSKitConformance
import FakeTLS

@Test("FakeTLS passes the TLSKit conformance suite", arguments: TLSConformance.cases(for: FakeTLSBackend.self))
func conformance(_ rule: TLSConformanceCase) async throws {
    try await rule.run()
}
