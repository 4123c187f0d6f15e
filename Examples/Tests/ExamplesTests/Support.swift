import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO

/// One backend as a test argument, named in the test report.
struct Backend: CustomTestStringConvertible, Sendable {
    let type: any TLSBackend.Type
    var testDescription: String { type.name }
    var name: String { type.name }
}

let allBackends: [Backend] = TLSBackends.available.map { Backend(type: $0) }
/// Every (client, server) pair: same backend and cross-backend.
let backendPairs: [(Backend, Backend)] = allBackends.flatMap { client in allBackends.map { (client, $0) } }

/// A temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "tlskit-examples-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Identities generated at run time: a server for localhost/127.0.0.1, a client, and a
/// stranger (a client certificate nobody trusts).
struct Identities {
    let server: TLSIdentity
    let client: TLSIdentity
    let stranger: TLSIdentity

    init(_ backend: Backend, clientName: String = "example-client") throws {
        server = try backend.type.makeSelfSignedIdentity(commonName: "localhost", subjectAlternativeNames: ["localhost", "127.0.0.1"], validityDays: 2)
        client = try backend.type.makeSelfSignedIdentity(commonName: clientName, subjectAlternativeNames: [clientName], validityDays: 2)
        stranger = try backend.type.makeSelfSignedIdentity(commonName: clientName, subjectAlternativeNames: [clientName], validityDays: 2)
    }
}

/// A client context of `backend` trusting `server`'s certificate, optionally presenting `identity`.
func clientContext(_ backend: Backend, trusting server: TLSIdentity, identity: TLSIdentity? = nil, alpn: [String] = []) throws -> TLSContext {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.trustRoots = .certificates([.pem(server.certificateChainPEM)])
    configuration.applicationProtocols = alpn
    if let identity {
        configuration.certificateChain = .pem(identity.certificateChainPEM)
        configuration.privateKey = .pem(identity.privateKeyPEM)
    }
    return try backend.type.makeContext(configuration)
}

/// The result of a finished child process.
struct ProcessResult {
    let status: Int32
    let output: String
    let error: String
}

/// Runs a tool to completion without blocking a Swift concurrency thread.
func run(_ executable: String, _ arguments: [String], input: String? = nil) async throws -> ProcessResult {
    let candidates = executable.hasPrefix("/") ? [executable] : ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"].map { "\($0)/\(executable)" }
    let path = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let path else { throw TLSError(.invalidConfiguration, "\(executable) is not installed", backend: "tests") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe(), error = Pipe(), stdin = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = stdin
    let collected = Collected()
    output.fileHandleForReading.readabilityHandler = { collected.append(out: $0.availableData) }
    error.fileHandleForReading.readabilityHandler = { collected.append(err: $0.availableData) }
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do { try process.run() } catch { continuation.resume(throwing: error); return }
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
    }
    output.fileHandleForReading.readabilityHandler = nil
    error.fileHandleForReading.readabilityHandler = nil
    collected.append(out: output.fileHandleForReading.readDataToEndOfFile())
    collected.append(err: error.fileHandleForReading.readDataToEndOfFile())
    return ProcessResult(status: status, output: collected.out, error: collected.err)
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var outData = Data(), errData = Data()
    func append(out data: Data) { lock.withLock { outData.append(data) } }
    func append(err data: Data) { lock.withLock { errData.append(data) } }
    var out: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
    var err: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }
}

/// Sends `request` over TLSKitNIO and returns everything the server sent until it closed,
/// and the ALPN value the handshake reported.
func tlsKitExchange(port: Int, context: TLSContext, request: String) async throws -> (alpn: String?, response: String) {
    let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    let alpn = eventLoop.makePromise(of: String?.self)
    let channel = try await ClientBootstrap(group: eventLoop)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSKitClientHandler(context: context, serverHostname: "localhost"))
                try channel.pipeline.syncOperations.addHandler(ALPNCatcher(promise: alpn))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: request))
        var response = ""
        for try await buffer in inbound { response += String(buffer: buffer) }
        return (try await alpn.futureResult.get(), response)
    }
}

/// Completes `promise` with the ALPN value of `TLSUserEvent.handshakeCompleted`.
final class ALPNCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<String?>
    init(promise: EventLoopPromise<String?>) { self.promise = promise }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event { promise.succeed(negotiated) }
        context.fireUserInboundEventTriggered(event)
    }
    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
