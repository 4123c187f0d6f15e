import Foundation
import Testing
import TLSKit

/// The path of the `tlsctl` binary built next to this test bundle.
func tlsctlPath() throws -> String {
    var directory = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("tlsctl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw TLSError(.invalidConfiguration, "tlsctl binary not found near \(Bundle.main.bundleURL.path)", backend: "tests")
}

@Suite("tlsctl info and demo", .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlInfoTests {
    @Test("tlsctl info names the default backend, its library version and capabilities")
    func info() throws {
        let (status, output, _) = try runTLSCtl(["info"], input: "")
        #expect(status == 0)
        #expect(output.contains("default backend: \(DefaultTLSBackend.id)"))
        #expect(output.contains(DefaultTLSBackend.libraryVersion))
        #expect(output.contains("ALPN"))
    }

    @Test("tlsctl demo completes a TLS 1.3 handshake and exits 0, on every compiled backend",
          arguments: TLSBuiltInBackends.available.map { $0.id.name })
    func demo(backend: String) throws {
        let (status, output, errors) = try runTLSCtl(["demo", "--backend", backend], input: "")
        #expect(status == 0, "\(errors)")
        #expect(output.contains("backend:       \(backend)"))
        #expect(output.contains("protocol:      TLSv1.3"))
        #expect(output.contains("verification:  verified"))
        #expect(output.contains("echo:          ok"))
    }
}
