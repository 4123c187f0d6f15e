// TLSKitNIO against swift-nio-ssl's NIOSSLHandler (BoringSSL), in one process, over
// loopback sockets: TLSKit client ↔ NIOSSL server and NIOSSL client ↔ TLSKit server, on
// each backend. The Examples package already builds swift-nio-ssl (gRPC and postgres-nio
// depend on it), so TLSKit's own package never resolves it.
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO

/// Records what reaches the end of a pipeline; optionally answers each read with "pong:<read>".
final class InteropRecorder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state = NIOLockedValueBox<(events: [String], received: String)>(([], ""))
    let echo: Bool
    let received: EventLoopPromise<String>
    let closed: EventLoopPromise<Void>
    let expected: String

    init(echo: Bool, expecting expected: String, on eventLoop: any EventLoop) {
        self.echo = echo
        self.expected = expected
        received = eventLoop.makePromise()
        closed = eventLoop.makePromise()
    }

    var events: [String] { state.withLockedValue { $0.events } }

    private func record(_ event: String) {
        state.withLockedValue { if event != "read" || $0.events.last != "read" { $0.events.append(event) } }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: unwrapInboundIn(data))
        record("read")
        let all = state.withLockedValue { $0.received += text; return $0.received }
        if all == expected {
            received.succeed(all)
            if echo { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "pong:" + all)), promise: nil) }
        }
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted(let negotiated): record("handshakeCompleted(\(negotiated ?? "nil"))")
        case TLSUserEvent.shutdownCompleted: record("shutdownCompleted")
        default: record("event(\(event))")
        }
        context.fireUserInboundEventTriggered(event)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record("error(\(error))")
    }
    func channelInactive(context: ChannelHandlerContext) {
        record("inactive")
        received.fail(ChannelError.eof)
        closed.succeed(())
    }
}

private func nioSSLIdentity(_ identity: TLSIdentity) throws -> (chain: [NIOSSLCertificateSource], key: NIOSSLPrivateKeySource, roots: NIOSSLTrustRoots) {
    let certificate = try NIOSSLCertificate(bytes: Array(identity.certificateChainPEM.utf8), format: .pem)
    let key = try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem)
    return ([.certificate(certificate)], .privateKey(key), .certificates([certificate]))
}

/// Runs one connection: `serverHandler()` on the accepted channel, `clientHandler()` on
/// the client; the client sends "ping", the server answers "pong:ping", then the client
/// closes. Returns the events both sides recorded once both channels are closed.
private func exchange(
    server serverHandler: @escaping @Sendable () throws -> any ChannelHandler,
    client clientHandler: @escaping @Sendable () throws -> any ChannelHandler
) async throws -> (client: [String], server: [String]) {
    let group = MultiThreadedEventLoopGroup.singleton
    let serverEventLoop = group.next()
    let serverRecorder = InteropRecorder(echo: true, expecting: "ping", on: serverEventLoop)
    let listener = try await ServerBootstrap(group: serverEventLoop)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try serverHandler())
                try channel.pipeline.syncOperations.addHandler(serverRecorder)
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    defer { listener.close(promise: nil) }
    let clientEventLoop = group.next()
    let clientRecorder = InteropRecorder(echo: false, expecting: "pong:ping", on: clientEventLoop)
    let client = try await ClientBootstrap(group: clientEventLoop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try clientHandler())
                try channel.pipeline.syncOperations.addHandler(clientRecorder)
            }
        }
        .connect(host: "127.0.0.1", port: listener.localAddress!.port!).get()
    try await client.writeAndFlush(ByteBuffer(string: "ping"))
    #expect(try await clientRecorder.received.futureResult.get() == "pong:ping")
    try await client.close()
    try await clientRecorder.closed.futureResult.get()
    try await serverRecorder.closed.futureResult.get()
    return (clientRecorder.events, serverRecorder.events)
}

@Suite("TLSKitNIO ↔ NIOSSLHandler in one process", .timeLimit(.minutes(10)))
struct NIOSSLInteropTests {
    @Test("TLSKitNIO client, NIOSSL server: handshake, ALPN h2, data both ways, close_notify both ways", arguments: allBackends)
    func tlsKitClient(backend: Backend) async throws {
        let identity = try Identities(backend).server
        let (chain, key, _) = try nioSSLIdentity(identity)
        var serverConfiguration = NIOSSL.TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        serverConfiguration.applicationProtocols = ["h2", "http/1.1"]
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        let clientContext = try clientContext(backend, trusting: identity, alpn: ["h2"])
        let events = try await exchange(
            server: { NIOSSLServerHandler(context: serverContext) },
            client: { try TLSKitClientHandler(context: clientContext, serverHostname: "localhost") })
        #expect(events.client == ["handshakeCompleted(h2)", "read", "shutdownCompleted", "inactive"])
        #expect(events.server == ["handshakeCompleted(h2)", "read", "shutdownCompleted", "inactive"])
    }

    @Test("NIOSSL client, TLSKitNIO server: handshake, ALPN h2, data both ways, close_notify both ways", arguments: allBackends)
    func tlsKitServer(backend: Backend) async throws {
        // BoringSSL does not take a `CA:FALSE` certificate (what makeSelfSignedIdentity
        // makes) as a trust root: the server's certificate here is a self-signed CA made
        // by `openssl req -x509`, at run time.
        let identity = try await opensslSelfSignedIdentity()
        let (_, _, roots) = try nioSSLIdentity(identity)
        var clientConfiguration = NIOSSL.TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = roots
        clientConfiguration.applicationProtocols = ["h2"]
        let clientContext = try NIOSSLContext(configuration: clientConfiguration)
        var serverConfiguration = TLSKit.TLSConfiguration.makeServerConfiguration(identity: identity)
        serverConfiguration.applicationProtocols = ["h2", "http/1.1"]
        let serverContext = try backend.type.makeContext(serverConfiguration)
        let events = try await exchange(
            server: { TLSKitServerHandler(context: serverContext) },
            client: { try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost") })
        #expect(events.client == ["handshakeCompleted(h2)", "read", "shutdownCompleted", "inactive"])
        #expect(events.server == ["handshakeCompleted(h2)", "read", "shutdownCompleted", "inactive"])
    }
}

/// A self-signed CA certificate for localhost/127.0.0.1 and its key, made by `openssl req`.
func opensslSelfSignedIdentity(subjectAltName: String = "DNS:localhost,IP:127.0.0.1") async throws -> TLSIdentity {
    let dir = try TemporaryDirectory(); defer { dir.remove() }
    let result = try await run("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", dir.path + "/key.pem", "-out", dir.path + "/cert.pem", "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=" + subjectAltName])
    guard result.status == 0 else { throw TLSError(.invalidConfiguration, "openssl req failed: \(result.error)", backend: "tests") }
    return TLSIdentity(certificateChainPEM: try String(contentsOfFile: dir.path + "/cert.pem", encoding: .utf8),
                       privateKeyPEM: try String(contentsOfFile: dir.path + "/key.pem", encoding: .utf8))
}
