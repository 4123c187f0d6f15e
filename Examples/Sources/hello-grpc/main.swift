// hello-grpc: a gRPC server and client over mutual TLS with TLSKitNIO, on either backend.
//
//   hello-grpc serve   --backend GnuTLS  --cert server.pem --key server.key --client-ca client.pem --port 50051
//   hello-grpc call    --backend OpenSSL --ca server.pem --cert client.pem --key client.key --port 50051 alice bob
import ArgumentParser
import Foundation
import ExampleSupport
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCTLSKit
import HelloGRPC
import TLSKit

@main
struct HelloGRPCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hello-grpc",
        abstract: "A gRPC server and client over mutual TLS with TLSKit (JSON messages).",
        subcommands: [Serve.self, Call.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve hello.Greeter, requiring client certificates.")
    @Option(help: "The TLS backend.") var backend = BackendChoice(DefaultTLSBackend.self)
    @Option(help: "The server certificate chain (PEM).") var cert: String
    @Option(help: "The server private key (PEM).") var key: String
    @Option(name: .customLong("client-ca"), help: "The CA certificates client certificates must chain to (PEM).") var clientCA: String
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port (0: any, printed on start).") var port = 50051

    func run() async throws {
        var configuration = TLSKit.TLSConfiguration.makeServerConfiguration(identity: try loadIdentity(certificate: cert, key: key))
        configuration.clientAuthentication = .required
        configuration.trustRoots = .certificates([.pem(try readPEM(clientCA))])
        let context = try backend.type.makeContext(configuration.withGRPCALPN())
        let peers = TLSKitPeers()
        let transport = HTTP2ServerTransport.Custom(
            listenerFactory: TLSKitListenerFactory(host: host, port: port, context: context, peers: peers))
        try await withGRPCServer(transport: transport, services: [GreeterService(backendName: backend.type.id.name, peers: peers)]) { _ in
            if let address = await transport.listeningAddress {
                print("listening on \(address) (\(backend.type.id.name))")
                fflush(nil)  // a script waits for this line (nil: every stream)
            }
            try await Task.sleep(for: .seconds(365 * 24 * 3600))
        }
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call SayHello for the first name, then Chat with all of them.")
    @Option(help: "The TLS backend.") var backend = BackendChoice(DefaultTLSBackend.self)
    @Option(help: "The CA certificates the server must chain to (PEM).") var ca: String
    @Option(help: "The client certificate chain (PEM).") var cert: String
    @Option(help: "The client private key (PEM).") var key: String
    @Option(help: "The server's host name (verified against its certificate).") var serverName = "localhost"
    @Option(help: "The server's IPv4 address.") var host = "127.0.0.1"
    @Option(help: "The server's port.") var port = 50051
    @Argument(help: "Names to greet.") var names: [String] = ["world"]

    func run() async throws {
        var configuration = TLSKit.TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(try readPEM(ca))])
        let identity = try loadIdentity(certificate: cert, key: key)
        configuration.certificateChain = .pem(identity.certificateChainPEM)
        configuration.privateKey = .pem(identity.privateKeyPEM)
        let context = try backend.type.makeContext(configuration.withGRPCALPN())
        let transport = try HTTP2ClientTransport.Posix.tlsKit(
            target: .ipv4(address: host, port: port), context: context, serverHostname: serverName)
        try await withGRPCClient(transport: transport) { client in
            let greeter = GreeterClient(client)
            print(try await greeter.sayHello(names[0]))
            for reply in try await greeter.chat(names) { print(reply) }
        }
    }
}
