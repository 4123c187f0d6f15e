import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCTLSKit
import HelloGRPC
import Testing
import TLSKit

/// Runs the Greeter over mutual TLS on `server`'s backend and calls it from `client`'s
/// with `clientIdentity`.
private func withGreeter<R: Sendable>(
    client: Backend, server: Backend, ids: Identities, clientIdentity: TLSIdentity,
    peers: TLSKitPeers = TLSKitPeers(),
    _ body: (GreeterClient<HTTP2ClientTransport.Posix>, TLSKitPeers) async throws -> R
) async throws -> R {
    var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: ids.server)
    serverConfiguration.clientAuthentication = .required
    serverConfiguration.trustRoots = .certificates([.pem(ids.client.certificateChainPEM)])
    let serverContext = try server.type.makeContext(serverConfiguration.withGRPCALPN())
    let transport = HTTP2ServerTransport.Custom(
        listenerFactory: TLSKitListenerFactory(host: "127.0.0.1", port: 0, context: serverContext, peers: peers))
    return try await withGRPCServer(transport: transport, services: [GreeterService(backendName: server.name, peers: peers)]) { _ in
        let port = try #require(await transport.listeningAddress?.ipv4?.port)
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates([.pem(ids.server.certificateChainPEM)])
        clientConfiguration.certificateChain = .pem(clientIdentity.certificateChainPEM)
        clientConfiguration.privateKey = .pem(clientIdentity.privateKeyPEM)
        let clientContext = try client.type.makeContext(clientConfiguration.withGRPCALPN())
        let clientTransport = try HTTP2ClientTransport.Posix.tlsKit(
            target: .ipv4(address: "127.0.0.1", port: port), context: clientContext, serverHostname: "localhost")
        return try await withGRPCClient(transport: clientTransport) { grpc in
            try await body(GreeterClient(grpc), peers)
        }
    }
}

@Suite("hello-grpc: gRPC over mutual TLS with TLSKitNIO", .timeLimit(.minutes(10)))
struct GRPCTests {
    @Test("unary and bidirectional streaming; the service sees the client certificate's subject", arguments: backendPairs)
    func mutualTLSCalls(client: Backend, server: Backend) async throws {
        let ids = try Identities(server)
        try await withGreeter(client: client, server: server, ids: ids, clientIdentity: ids.client) { greeter, peers in
            let expected = { (name: String) in "hello \(name) from \(server.name), you are CN=example-client" }
            let unary = try await greeter.sayHello("alice")
            #expect(unary == expected("alice"))
            let streamed = try await greeter.chat(["bob", "carol", "dave"])
            #expect(streamed == ["bob", "carol", "dave"].map(expected))
            #expect(peers.count == 1)
        }
    }

    @Test("a client whose certificate the server does not trust is refused: unknown_ca on both sides", arguments: backendPairs)
    func untrustedClient(client: Backend, server: Backend) async throws {
        let ids = try Identities(server)
        let (failures, failed) = AsyncStream<(remotePeer: String, error: any Error)>.makeStream()
        let peers = TLSKitPeers { failed.yield(($0, $1)) }
        try await withGreeter(client: client, server: server, ids: ids, clientIdentity: ids.stranger, peers: peers) { greeter, peers in
            var options = CallOptions.defaults
            options.waitForReady = false
            options.timeout = .seconds(60)  // a safety net only: the refusal is immediate
            let error = await #expect(throws: RPCError.self) { try await greeter.sayHello("mallory", options: options) }
            // TLS 1.3 lets the client finish its handshake before the server judges its
            // certificate: the connection fails on the server's alert, which the client's
            // TLSKit handler reports and gRPC keeps as the cause.
            #expect(error?.code == .unavailable, "\(String(reflecting: error))")
            let cause = error?.cause as? TLSError
            #expect(cause?.code == .alertReceived, "\(String(reflecting: error))")
            #expect(cause?.alert == .unknownCA, "\(String(reflecting: error))")
            #expect(cause?.backend == client.type.id, "\(String(reflecting: error))")
            // The server's side: the handshake failed verifying a lone self-signed
            // certificate it does not trust, and it sent unknown_ca.
            var iterator = failures.makeAsyncIterator()
            let failure = try #require(await iterator.next())
            let serverError = failure.error as? TLSError
            #expect(serverError?.code == .certificateVerificationFailed, "\(failure.error)")
            #expect(serverError?.verificationFailure == .selfSigned, "\(failure.error)")
            #expect(serverError?.alert == .unknownCA, "\(failure.error)")
            #expect(serverError?.backend == server.type.id, "\(failure.error)")
            #expect(peers.count == 0)
        }
    }
}
