// hello-hummingbird: an HTTPS server (HTTP/1.1 and HTTP/2 by ALPN) on Hummingbird 2 over
// TLSKitNIO, on either backend.
//
//   hello-hummingbird --backend GnuTLS --cert server.pem --key server.key --port 8443
//   curl --http2 --cacert server.pem https://localhost:8443/
import ArgumentParser
import Foundation
import ExampleSupport
import HelloHummingbird
import Hummingbird
import NIOSSL
import TLSKit

@main
struct HelloHummingbirdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hello-hummingbird",
        abstract: "An HTTPS server on Hummingbird over TLSKit (HTTP/1.1 and HTTP/2 by ALPN).")

    @Option(help: "The TLS backend: \(BackendChoice.allValueStrings.joined(separator: " or ")).")
    var backend = BackendChoice(DefaultTLSBackend.self)

    @Option(help: "The server certificate chain (PEM).") var cert: String
    @Option(help: "The server private key (PEM).") var key: String
    @Option(name: .customLong("client-ca"), help: "Require client certificates issued by these CAs (PEM): mutual TLS.")
    var clientCA: String?
    @Flag(help: "HTTP/1.1 only (no h2 in ALPN).") var http1Only = false
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port (0: any free port, printed on start).") var port = 8443
    @Flag(name: .customLong("nio-ssl"), help: "Serve over HummingbirdTLS / swift-nio-ssl instead of TLSKitNIO (for comparison; --backend and --client-ca are ignored).")
    var nioSSL = false

    func run() async throws {
        var options = HelloHummingbirdOptions(
            backend: backend.type, identity: try loadIdentity(certificate: cert, key: key),
            clientCAPEM: try clientCA.map(readPEM), http2: !http1Only, host: host, port: port)
        if nioSSL {
            options.nioSSL = NIOSSL.TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        }
        let host = options.host
        let name = options.nioSSL == nil ? options.backend.id.name : "NIOSSL"
        let app = try makeHelloApplication(options) { port in
            print("listening on \(host):\(port) (\(name))")
            fflush(nil)  // a script waits for this line (nil: every stream)
        }
        try await app.runService()
    }
}
