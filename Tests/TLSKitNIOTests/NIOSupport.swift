#if NIO
import Foundation
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO
import TLSKitTestSupport

/// One backend as a test argument, named in the test report.
struct Backend: CustomTestStringConvertible, Sendable {
    let type: any TLSBackend.Type
    var testDescription: String { type.id.name }
}

let allBackends: [Backend] = TLSBuiltInBackends.available.map { Backend(type: $0) }

/// Every (client, server) backend pair of this build: one pair per backend, four with both.
let backendPairs: [(Backend, Backend)] = allBackends.flatMap { client in allBackends.map { (client, $0) } }

/// A server identity for `localhost` made at run time, and contexts around it.
struct Fixture {
    let backend: any TLSBackend.Type
    let identity: TLSIdentity

    init(_ backend: Backend) throws {
        self.backend = backend.type
        identity = try backend.type.makeSelfSignedIdentity(
            commonName: "localhost", subjectAlternativeNames: ["localhost", "127.0.0.1"], validityDays: 2)
    }

    func serverContext(_ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
        change(&configuration)
        return try backend.makeContext(configuration)
    }

    /// A client of `backend` that trusts exactly this fixture's certificate.
    func clientContext(_ backend: Backend? = nil, _ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        change(&configuration)
        return try (backend?.type ?? self.backend).makeContext(configuration)
    }
}

/// Records what reaches the end of a pipeline, as short strings in arrival order.
final class EventRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    var events: [String] = []
    var received: [UInt8] = []
    var errors: [any Error] = []

    func channelActive(context: ChannelHandlerContext) { events.append("active") }
    func channelInactive(context: ChannelHandlerContext) { events.append("inactive") }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received += buffer.readableBytesView
        events.append("read")
    }
    func channelReadComplete(context: ChannelHandlerContext) {
        if events.last != "readComplete" { events.append("readComplete") }
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
        events.append("error(\((error as? TLSError)?.code.name ?? "\(error)"))")
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted(let negotiated): events.append("handshakeCompleted(\(negotiated ?? "nil"))")
        case TLSUserEvent.shutdownCompleted: events.append("shutdownCompleted")
        case ChannelEvent.inputClosed: events.append("inputClosed")
        default: events.append("event(\(event))")
        }
    }

    /// The events with consecutive "read"s merged: how batches split is the library's business.
    var summary: [String] {
        events.reduce(into: []) { result, event in
            if event == "read", result.last == "read" { return }
            result.append(event)
        }
    }

    var text: String { String(decoding: received, as: UTF8.self) }
    var tlsErrors: [TLSError] { errors.compactMap { $0 as? TLSError } }
}

/// A client and a server `EmbeddedChannel` with TLSKit handlers; the test moves the bytes.
class EmbeddedPair {
    let client = EmbeddedChannel()
    let server = EmbeddedChannel()
    let clientEvents = EventRecorder()
    let serverEvents = EventRecorder()
    let clientHandler: TLSKitClientHandler
    let serverHandler: TLSKitServerHandler
    /// Every ciphertext buffer the client wrote, in order.
    var clientWire: [ByteBuffer] = []
    var serverWire: [ByteBuffer] = []

    /// `clientHead`/`serverHead` go between the channel and the TLS handler (ciphertext),
    /// `clientMiddle`/`serverMiddle` between the TLS handler and the recorder (plaintext).
    convenience init(client clientContext: TLSContext, server serverContext: TLSContext, serverHostname: String? = "localhost",
         clientHead: [any ChannelHandler] = [], serverHead: [any ChannelHandler] = [],
         clientMiddle: [any ChannelHandler] = [], serverMiddle: [any ChannelHandler] = []) throws {
        try self.init(clientHandler: TLSKitClientHandler(context: clientContext, serverHostname: serverHostname),
                      serverHandler: TLSKitServerHandler(context: serverContext),
                      clientHead: clientHead, serverHead: serverHead, clientMiddle: clientMiddle, serverMiddle: serverMiddle)
    }

    /// A pair around handlers made by the caller (with a verification callback, say).
    init(clientHandler: TLSKitClientHandler, serverHandler: TLSKitServerHandler,
         clientHead: [any ChannelHandler] = [], serverHead: [any ChannelHandler] = [],
         clientMiddle: [any ChannelHandler] = [], serverMiddle: [any ChannelHandler] = []) throws {
        self.clientHandler = clientHandler
        self.serverHandler = serverHandler
        try client.pipeline.syncOperations.addHandlers(clientHead + [clientHandler] + clientMiddle + [clientEvents])
        try server.pipeline.syncOperations.addHandlers(serverHead + [serverHandler] + serverMiddle + [serverEvents])
    }

    func activate() throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 443)
        try completed(server.connect(to: address), "the server's connect")
        try completed(client.connect(to: address), "the client's connect")
    }

    /// Runs what both event loops queued and moves ciphertext both ways until neither
    /// side has anything to say; returns the number of buffers moved.
    @discardableResult
    func exchange() throws -> Int {
        var moved = 0
        while true {
            // Tasks the handlers queued (a handshake resumed after a verification answer,
            // a decode deferred out of a close) run first.
            client.embeddedEventLoop.run()
            server.embeddedEventLoop.run()
            var round = 0
            while let buffer = try client.readOutbound(as: ByteBuffer.self) {
                clientWire.append(buffer)
                round += 1
                if server.isActive { try server.writeInbound(buffer) }
            }
            while let buffer = try server.readOutbound(as: ByteBuffer.self) {
                serverWire.append(buffer)
                round += 1
                if client.isActive { try client.writeInbound(buffer) }
            }
            if round == 0 { return moved }
            moved += round
        }
    }

    func write(client text: String) {
        client.writeAndFlush(ByteBuffer(string: text), promise: nil)
    }

    func write(server text: String) {
        server.writeAndFlush(ByteBuffer(string: text), promise: nil)
    }
}

/// The first byte of each TLS record in a stream of ciphertext buffers.
func recordTypes(_ buffers: [ByteBuffer]) -> [UInt8] {
    var bytes: [UInt8] = buffers.flatMap { Array($0.readableBytesView) }
    var types: [UInt8] = []
    while bytes.count >= 5 {
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        types.append(bytes[0])
        bytes.removeFirst(min(bytes.count, 5 + length))
    }
    return types
}

/// A wait that outlived its deadline: the test fails with what it was waiting for.
struct DeadlineExceeded: Error, CustomStringConvertible {
    let description: String
}

/// The value of `future`, or `DeadlineExceeded` naming `what` if it is not complete
/// within `limit`: a guard against a hang (a future's `get()` ignores task cancellation,
/// so the suite's time limit alone could not stop it), not a timed assertion.
func value<T: Sendable>(of future: EventLoopFuture<T>, within limit: TimeAmount, _ what: String) async throws -> T {
    let bounded = future.eventLoop.makePromise(of: T.self)
    future.cascade(to: bounded)
    let timer = future.eventLoop.scheduleTask(in: limit) {
        bounded.fail(DeadlineExceeded(description: "still waiting after \(limit): \(what)"))
    }
    defer { timer.cancel() }
    return try await bounded.futureResult.get()
}

/// A future that was expected to be complete and is not.
struct StillPending: Error, CustomStringConvertible {
    let description: String
}

/// The outcome of an `EmbeddedChannel` future, read without waiting: its value, or its
/// error thrown, or `StillPending` thrown. On an `EmbeddedEventLoop` every future the
/// test's own steps complete is complete when they return; `wait()` on one that nothing
/// will complete blocks its thread for ever (no time limit ends it, and the blocked
/// thread is one of the few the test run has).
func completed<T: Sendable>(_ future: EventLoopFuture<T>, _ what: String) throws -> T {
    let outcome = Locked<Result<T, any Error>?>(nil)
    future.whenComplete { result in outcome.withLock { $0 = result } }
    guard let result = outcome.withLock({ $0 }) else {
        throw StillPending(description: "not complete: \(what)")
    }
    return try result.get()
}

/// The absolute path of a tool the suite needs; a missing tool fails the test.
func tool(_ name: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TLSError(.invalidConfiguration, "\(name) is not installed (apt-get install openssl gnutls-bin curl)", backend: "tests")
}

/// Writes the identity to files the tools can read; returns (directory, cert, key).
func identityFiles(_ identity: TLSIdentity) throws -> (URL, String, String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tlskitnio-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let cert = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    try identity.certificateChainPEM.write(toFile: cert, atomically: true, encoding: .utf8)
    try identity.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
    return (directory, cert, key)
}
#endif
