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
    var testDescription: String { type.id.name }
    var name: String { type.id.name }
}

let allBackends: [Backend] = TLSBuiltInBackends.available.map { Backend(type: $0) }
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

/// Runs a tool to completion (stdin /dev/null, stdout and stderr to files) and returns its
/// status and output. posix_spawn + waitpid on a Dispatch thread, not Foundation's
/// Process: Process learns of a child's exit through a descriptor the child inherits, and
/// a daemon it starts (pg_ctl → postgres) would keep that open for ever.
func run(_ executable: String, _ arguments: [String]) async throws -> ProcessResult {
    let candidates = executable.hasPrefix("/") ? [executable] : ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"].map { "\($0)/\(executable)" }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TLSError(.invalidConfiguration, "\(executable) is not installed", backend: "tests")
    }
    let dir = try TemporaryDirectory(); defer { dir.remove() }
    let outPath = dir.path + "/stdout", errPath = dir.path + "/stderr"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
    guard spawned == 0 else { throw TLSError(.invalidConfiguration, "cannot start \(path): errno \(spawned)", backend: "tests") }
    let status: Int32 = await withCheckedContinuation { continuation in
        DispatchQueue.global().async { [pid] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            // WIFEXITED ? WEXITSTATUS : 128 + signal
            continuation.resume(returning: status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
        }
    }
    return ProcessResult(status: status,
                         output: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         error: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
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
