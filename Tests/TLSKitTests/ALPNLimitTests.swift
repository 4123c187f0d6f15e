import Testing
import TLSKit

/// ALPN lists a library cannot carry whole are refused at context creation, never
/// offered or accepted in part (GnuTLS 3.7 keeps 8 protocols of at most 31 bytes).
@Suite("ALPN list limits", .timeLimit(.minutes(2)), .sharesProcess)
struct ALPNLimitTests {
    static let nine = (1...9).map { "proto-\($0)" }
    static let long = String(repeating: "p", count: 32)

    @Test("nine protocols, or a 32-byte name: GnuTLS refuses the context (unsupported); OpenSSL negotiates the last one",
          arguments: allBackends, [nine, ["h2", long]])
    func limits(backend: Backend, protocols: [String]) throws {
        let fixture = try Fixture(backend)
        if backend.name == "GnuTLS" {
            for role in [TLSRole.client, .server] {
                let error = #expect(throws: TLSError.self) {
                    if role == .client { _ = try fixture.clientContext { $0.applicationProtocols = protocols } }
                    else { _ = try fixture.serverContext { $0.applicationProtocols = protocols } }
                }
                #expect(error?.code == .unsupported)
                #expect(error?.backend == backend.id)
                #expect(error?.message == (protocols.count > 8
                    ? "GnuTLS takes at most 8 ALPN protocols, 9 were configured (it would drop the rest silently)"
                    : "GnuTLS takes ALPN protocol names of at most 31 bytes, got 32 for \"\(Self.long)\""))
            }
            // The limits themselves are accepted.
            let eight = Array(Self.nine.prefix(7)) + [String(repeating: "q", count: 31)]
            let link = try MemoryLink(fixture, client: { $0.applicationProtocols = eight },
                                      server: { $0.applicationProtocols = [eight[7]] })
            #expect(link.handshake().client.last == Step(1, .none))
            #expect(link.client.negotiatedApplicationProtocol == eight[7])
        } else {
            let link = try MemoryLink(fixture, client: { $0.applicationProtocols = protocols },
                                      server: { $0.applicationProtocols = [protocols.last!] })
            #expect(link.handshake().client.last == Step(1, .none), "\(String(describing: link.client.lastError))")
            #expect(link.server.negotiatedApplicationProtocol == protocols.last)
        }
    }
}
