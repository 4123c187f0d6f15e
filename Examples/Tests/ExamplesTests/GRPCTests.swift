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
    _ body: (GreeterClient<HTTP2ClientTransport.Posix>, TLSKitPeers) async throws -> R
) async throws -> R {
    var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: ids.server)
    serverConfiguration.clientAuthentication = .required
    serverConfiguration.trustRoots = .certificates([.pem(ids.client.certificateChainPEM)])
    let serverContext = try server.type.makeContext(serverConfiguration.withGRPCALPN())
    let peers = TLSKitPeers()
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

    @Test("a client whose certificate the server does not trust is refused", arguments: backendPairs)
    func untrustedClient(client: Backend, server: Backend) async throws {
        let ids = try Identities(server)
        try await withGreeter(client: client, server: server, ids: ids, clientIdentity: ids.stranger) { greeter, peers in
            var options = CallOptions.defaults
            options.waitForReady = false
            options.timeout = .seconds(60)  // a safety net only: the refusal is immediate
            let error = await #expect(throws: RPCError.self) { try await greeter.sayHello("mallory", options: options) }
            #expect(error?.code == .unavailable, "\(String(describing: error))")
            #expect(peers.count == 0)
        }
    }
}
