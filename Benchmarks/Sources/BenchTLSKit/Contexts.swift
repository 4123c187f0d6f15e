// TLSKit contexts as bench-tlskit and bench-nio (`--handler tlskit`) make them, so that
// raw TLSKit and TLSKitNIO do the same TLS work.
import BenchSupport
public import TLSKit

/// The backend named by `--backend openssl|gnutls`.
public func tlsKitBackend(_ arguments: BenchArguments) -> any TLSBackend.Type {
    arguments["backend", default: "openssl"] == "gnutls" ? GnuTLSBackend.self : OpenSSLBackend.self
}

/// Contexts with TLSKit's defaults; `--groups x25519` restricts the key exchange (used
/// for resumption, where the C programs are configured the same way).
public func makeTLSKitContexts(_ arguments: BenchArguments, backend: any TLSBackend.Type) -> (client: TLSContext, server: TLSContext) {
    let (certificate, key, ca) = arguments.certificatePaths
    var client = TLSConfiguration.makeClientConfiguration()
    client.trustRoots = .caFile(ca)
    client.serverName = "localhost"
    var server = TLSConfiguration.makeServerConfiguration(certificateChain: .file(certificate), privateKey: .file(key))
    let groups = arguments["groups", default: ""]
    if !groups.isEmpty {
        client.keyExchangeGroups = [groups.lowercased()]
        server.keyExchangeGroups = [groups.lowercased()]
    }
    // `--cipher aes128`: AES-128-GCM only (the bulk scenario's suite; TLS 1.3 is
    // negotiated, the TLS 1.2 entries keep the configuration valid for both versions).
    if arguments["cipher", default: ""] == "aes128" {
        let suites = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        client.cipherSuites = suites
        server.cipherSuites = suites
    }
    do {
        return (try backend.makeContext(client), try backend.makeContext(server))
    } catch {
        benchFail("context: \(error)")
    }
}

