// The hello-grpc service: JSON messages (no protobuf code generator), a unary and a
// bidirectional-streaming method, and answers that name the caller's certificate subject.
import Foundation
public import GRPCCore
public import GRPCTLSKit
import TLSKit

/// A Codable message as JSON on the wire.
public struct JSONSerializer<Message: Encodable & Sendable>: MessageSerializer {
    /// A serializer.
    public init() {}
    /// Encodes `message` as JSON.
    public func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        Bytes(try JSONEncoder().encode(message))
    }
}

/// JSON on the wire as a Codable message.
public struct JSONDeserializer<Message: Decodable & Sendable>: MessageDeserializer {
    /// A deserializer.
    public init() {}
    /// Decodes JSON bytes.
    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        try serializedMessageBytes.withUnsafeBytes { try JSONDecoder().decode(Message.self, from: Data($0)) }
    }
}

/// The request: a name.
public struct HelloRequest: Codable, Sendable, Equatable {
    /// Who says hello.
    public var name: String
    /// A request.
    public init(name: String) { self.name = name }
}

/// The reply: one line of text.
public struct HelloReply: Codable, Sendable, Equatable {
    /// The greeting.
    public var message: String
    /// A reply.
    public init(message: String) { self.message = message }
}

/// The two methods of `hello.Greeter`.
public enum Greeter {
    /// `hello.Greeter/SayHello`: unary.
    public static let sayHello = MethodDescriptor(fullyQualifiedService: "hello.Greeter", method: "SayHello")
    /// `hello.Greeter/Chat`: bidirectional streaming, one reply per request.
    public static let chat = MethodDescriptor(fullyQualifiedService: "hello.Greeter", method: "Chat")
}

/// The service: each reply names the server's backend and the caller's certificate subject,
/// read from ``TLSKitPeers`` by the call's `remotePeer`.
public struct GreeterService: RegistrableRPCService {
    let backendName: String
    let peers: TLSKitPeers

    /// A greeter answering from `backendName`, reading callers from `peers`.
    public init(backendName: String, peers: TLSKitPeers) {
        self.backendName = backendName
        self.peers = peers
    }

    func greeting(_ name: String, _ context: ServerContext) -> HelloReply {
        let subject = peers.connectionInfo(remotePeer: context.remotePeer)?.peerCertificate?.subject ?? "anonymous"
        return HelloReply(message: "hello \(name) from \(backendName), you are \(subject)")
    }

    /// Registers SayHello and Chat.
    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Greeter.sayHello,
            deserializer: JSONDeserializer<HelloRequest>(),
            serializer: JSONSerializer<HelloReply>()
        ) { request, context in
            var iterator = request.messages.makeAsyncIterator()
            guard let first = try await iterator.next() else {
                throw RPCError(code: .invalidArgument, message: "SayHello needs one request")
            }
            let reply = greeting(first.name, context)
            return StreamingServerResponse(single: ServerResponse(message: reply))
        }
        router.registerHandler(
            forMethod: Greeter.chat,
            deserializer: JSONDeserializer<HelloRequest>(),
            serializer: JSONSerializer<HelloReply>()
        ) { request, context in
            StreamingServerResponse { writer in
                for try await message in request.messages {
                    try await writer.write(greeting(message.name, context))
                }
                return [:]
            }
        }
    }
}

/// The client side of `hello.Greeter`.
public struct GreeterClient<Transport: ClientTransport>: Sendable {
    let client: GRPCClient<Transport>

    /// Calls through `client`.
    public init(_ client: GRPCClient<Transport>) { self.client = client }

    /// SayHello (unary).
    public func sayHello(_ name: String, options: CallOptions = .defaults) async throws -> String {
        try await client.unary(
            request: ClientRequest(message: HelloRequest(name: name)), descriptor: Greeter.sayHello,
            serializer: JSONSerializer<HelloRequest>(), deserializer: JSONDeserializer<HelloReply>(),
            options: options
        ) { try $0.message.message }
    }

    /// Chat (bidirectional streaming): sends every name, returns every reply in order.
    public func chat(_ names: [String]) async throws -> [String] {
        try await client.bidirectionalStreaming(
            request: StreamingClientRequest { writer in
                for name in names { try await writer.write(HelloRequest(name: name)) }
            },
            descriptor: Greeter.chat,
            serializer: JSONSerializer<HelloRequest>(), deserializer: JSONDeserializer<HelloReply>(),
            options: .defaults
        ) { response in
            var replies: [String] = []
            for try await reply in response.messages { replies.append(reply.message) }
            return replies
        }
    }
}
