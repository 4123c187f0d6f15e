// The hello-hummingbird application: one route that says which protocol (ALPN), which
// TLSKit backend and which client certificate the request came with.
public import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import HummingbirdTLS
import HummingbirdTLSKit
public import Logging
import NIOCore
public import NIOSSL
public import TLSKit

/// How to run the example server.
public struct HelloHummingbirdOptions: Sendable {
    /// The backend serving TLS.
    public var backend: any TLSBackend.Type
    /// The server's certificate and key.
    public var identity: TLSIdentity
    /// With a value, mutual TLS: clients must present a certificate issued by one of these (PEM).
    public var clientCAPEM: String?
    /// Offer HTTP/2 by ALPN (`h2`, then `http/1.1`); without it, HTTP/1.1 only.
    public var http2: Bool
    /// Address and port (0: the system picks one).
    public var host: String
    /// The port; 0 lets the system pick.
    public var port: Int
    /// With a value, the same server over HummingbirdTLS (swift-nio-ssl's NIOSSLHandler)
    /// instead of TLSKitNIO, for comparison: `backend` and `clientCAPEM` are then unused.
    public var nioSSL: NIOSSL.TLSConfiguration?

    /// Options with HTTP/2 on and no client authentication.
    public init(backend: any TLSBackend.Type, identity: TLSIdentity, clientCAPEM: String? = nil,
                http2: Bool = true, host: String = "127.0.0.1", port: Int = 0) {
        self.backend = backend
        self.identity = identity
        self.clientCAPEM = clientCAPEM
        self.http2 = http2
        self.host = host
        self.port = port
    }
}

/// The server's TLSKit context for these options.
public func makeHelloServerContext(_ options: HelloHummingbirdOptions) throws -> TLSContext {
    var configuration = TLSKit.TLSConfiguration.makeServerConfiguration(identity: options.identity)
    if let clientCAPEM = options.clientCAPEM {
        configuration.clientAuthentication = .required
        configuration.trustRoots = .certificates([.pem(clientCAPEM)])
    }
    if options.http2 { configuration = configuration.withHTTP2ALPN() }
    return try options.backend.makeContext(configuration)
}

/// The Hummingbird application; `onRunning` gets the bound port.
public func makeHelloApplication(
    _ options: HelloHummingbirdOptions,
    logger: Logger = Logger(label: "hello-hummingbird"),
    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let router = Router(context: TLSKitRequestContext.self)
    let server: HTTPServerBuilder
    if let nioSSL = options.nioSSL {
        // The same route, reading the same facts from NIOSSL's handler (one pipeline lookup).
        router.get("/") { _, requestContext -> String in
            let channel = requestContext.channel
            // HTTP/1.1: the connection's own pipeline; HTTP/2: the stream's parent's.
            var alpn = "http/1.1"
            var version = try? await channel.nioSSL_tlsVersion().get()
            if version == nil {
                alpn = "h2"
                version = try? await channel.parent?.nioSSL_tlsVersion().get()
            }
            return "hello over \(alpn) from NIOSSL (\(version.map { "\($0)" } ?? "?"))\n"
        }
        server = options.http2
            ? try .http2Upgrade(tlsConfiguration: nioSSL)
            : try .tls(.http1(), tlsConfiguration: nioSSL)
    } else {
        let context = try makeHelloServerContext(options)
        router.get("/") { _, requestContext -> String in
            let info = try await requestContext.tlsKitConnectionInfo()
            let alpn = info?.negotiatedApplicationProtocol ?? "none"
            let version = info?.negotiatedVersion.map { "\($0)" } ?? "?"
            var text = "hello over \(alpn) from TLSKit \(context.backendID) (\(version))"
            if let subject = info?.peerCertificate?.subject { text += ", client \(subject)" }
            return text + "\n"
        }
        server = options.http2
            ? try .http2UpgradeTLSKit(context: context)
            : .http1TLSKit(context: context)
    }
    return Application(
        router: router,
        server: server,
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "hello-hummingbird"),
        onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
        logger: logger
    )
}

