// Why one file of 400+ lines: one suite over real loopback sockets (NIOPosix), whose
// cases share one server/client bootstrap helper set at the end of the file; the
// in-memory cases live in EmbeddedHandlerTests.swift and CloseSemanticsTests.swift.
#if NIO
import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO
import TLSKitTestSupport

/// The handlers on real loopback sockets of a `MultiThreadedEventLoopGroup`: against
/// each other through `NIOAsyncChannel`, against openssl, gnutls and curl, through
/// `NIOClientTCPBootstrap`, half-closed, and under writability changes.
@Suite("TLSKitNIO on sockets", .serialized, .timeLimit(.minutes(10)))
struct SocketHandlerTests {
    static let group = MultiThreadedEventLoopGroup.singleton

    typealias Stream = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// A listening TLSKit server and the outcome of each connection it served.
    struct Server {
        let channel: NIOAsyncChannel<Stream, Never>
        let task: Task<Void, any Error>
        /// One element per connection served, in order: its `serve` returned or threw.
        let outcomes: AsyncStream<Result<Void, any Error>>
        var port: Int? { channel.channel.localAddress?.port }

        /// Waits (at most `limit`) until the first `count` connections have been served,
        /// throwing the first error one of them threw: a server-side failure fails the test.
        func served(_ count: Int, within limit: Duration = .seconds(60)) async throws {
            let outcomes = outcomes
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var next = outcomes.makeAsyncIterator()
                    for served in 0..<count {
                        guard let outcome = await next.next() else {
                            throw DeadlineExceeded(description: "the server stopped after \(served) of \(count) connections")
                        }
                        do { try outcome.get() } catch { throw ServerFailure(connection: served + 1, error: error) }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    throw DeadlineExceeded(description: "still waiting after \(limit) for \(count) connections to be served")
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// A TLSKit server whose every connection runs `serve`, one after the other.
    private func startServer(
        context: TLSContext, halfClosure: Bool = false,
        serve: @escaping @Sendable (Stream) async throws -> Void
    ) async throws -> (Server, Task<Void, any Error>) {
        let server = try await ServerBootstrap(group: Self.group)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: halfClosure)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSKitServerHandler(context: context))
                    return try Stream(wrappingChannelSynchronously: channel)
                }
            }
        let (outcomes, served) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        let task = Task {
            defer { served.finish() }
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    do {
                        try await serve(connection)
                        served.yield(.success(()))
                    } catch {
                        served.yield(.failure(error))
                    }
                }
            }
        }
        return (Server(channel: server, task: task, outcomes: outcomes), task)
    }

    /// A client; `handshake`, if given, completes when `TLSUserEvent.handshakeCompleted`
    /// arrives, or fails with the error that ended the handshake.
    private func connect(port: Int, context: TLSContext, halfClosure: Bool = false, autoRead: Bool = true,
                         handshake: EventLoopPromise<Handshake>? = nil, observer: Collector? = nil) async throws -> Stream {
        try await ClientBootstrap(group: Self.group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: halfClosure)
            .channelOption(ChannelOptions.autoRead, value: autoRead)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        TLSKitClientHandler(context: context, serverHostname: "localhost"))
                    if let handshake {
                        try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(handshake))
                    }
                    if let observer { try channel.pipeline.syncOperations.addHandler(observer) }
                    return try Stream(wrappingChannelSynchronously: channel,
                                      configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
    }

    @Test("NIOAsyncChannel client and server: echo, then a clean close", arguments: backendPairs.map { ($0.0, $0.1) })
    func asyncEcho(backends: (Backend, Backend)) async throws {
        let fixture = try Fixture(backends.1)
        let (server, task) = try await startServer(context: fixture.serverContext()) { connection in
            try await connection.executeThenClose { inbound, outbound in
                for try await buffer in inbound { try await outbound.write(buffer) }
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)
        let handshake = Self.group.next().makePromise(of: Handshake.self)
        defer { handshake.fail(CancellationError()) }  // no leaked promise, whatever happened (no-op once completed)
        let client = try await connect(port: port, context: fixture.clientContext(backends.0), handshake: handshake)
        // Everything below runs inside executeThenClose, so that a failed check still
        // closes the channel (an NIOAsyncChannel dropped unfinished traps).
        let echoed = try await client.executeThenClose { inbound, outbound in
            // Once the handshake has completed (no ALPN configured: nil), what it
            // established, read from outside the event loop.
            let completed = try await value(of: handshake.futureResult, within: .seconds(60), "the client's handshake")
            #expect(completed.negotiatedProtocol == nil)
            let info = try #require(try await client.channel.tlsKitConnectionInfo().get())
            #expect(info.peerVerification == .verified)
            #expect(info.negotiatedVersion == .tls13)
            #expect(info.negotiatedApplicationProtocol == nil)
            try await outbound.write(ByteBuffer(string: "hello over NIO"))
            var echoed = ""
            for try await buffer in inbound {
                echoed += String(buffer: buffer)
                if echoed.count >= 14 { break }
            }
            let after = try #require(try await client.channel.tlsKitConnectionInfo().get())
            #expect(after.peerVerification == .verified)
            #expect(after.negotiatedVersion == .tls13)
            return echoed
        }
        #expect(echoed == "hello over NIO")
        try await server.served(1)
    }

    @Test("half-close: close(mode: .output) sends close_notify; the peer sees inputClosed and still answers",
          arguments: allBackends)
    func halfClose(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let (server, task) = try await startServer(context: fixture.serverContext(), halfClosure: true) { connection in
            try await connection.executeThenClose { inbound, outbound in
                var request = ""
                // The loop ends on ChannelEvent.inputClosed: the client's close_notify.
                for try await buffer in inbound { request += String(buffer: buffer) }
                try await outbound.write(ByteBuffer(string: "got \(request)"))
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)
        let client = try await connect(port: port, context: fixture.clientContext(), halfClosure: true)
        let reply = try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "request"))
            outbound.finish()  // close(mode: .output)
            var reply = ""
            for try await buffer in inbound { reply += String(buffer: buffer) }
            return reply
        }
        #expect(reply == "got request")
        try await server.served(1)
    }

    @Test("executeThenClose with outbound half-closure: finish(), then close() before the peer's close_notify, closes cleanly",
          arguments: backendPairs.map { ($0.0, $0.1) })
    func finishThenClose(backends: (Backend, Backend)) async throws {
        let fixture = try Fixture(backends.1)
        let (server, task) = try await startServer(context: fixture.serverContext(), halfClosure: true) { connection in
            try await connection.executeThenClose { inbound, outbound in
                var request = ""
                for try await buffer in inbound { request += String(buffer: buffer) }
                #expect(request == "request")
                try await outbound.write(ByteBuffer(string: "late answer"))
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)
        let observer = Collector(greeting: "request")
        let handshake = Self.group.next().makePromise(of: Handshake.self)
        defer { handshake.fail(CancellationError()) }  // no leaked promise (a no-op once completed)
        let client = try await connect(port: port, context: fixture.clientContext(backends.0), halfClosure: true,
                                       handshake: handshake, observer: observer)
        try await client.executeThenClose { _, outbound in
            // (A close during the handshake is immediate, as NIOSSL's: wait for it first.)
            _ = try await value(of: handshake.futureResult, within: .seconds(60), "the client's handshake")
            outbound.finish()  // close(mode: .output) after the greeting; then close() at once
        }
        try await value(of: client.channel.closeFuture, within: .seconds(30), "the client's close")
        // The close waited for the server's answer and close_notify: no error on the way.
        #expect(observer.summary == "active handshakeCompleted(nil) late answer shutdownCompleted")
        try await server.served(1)
    }

    @Test("a 4 MiB write across writability changes", arguments: allBackends)
    func bigWriteOverLoopback(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let size = 4 << 20
        let (server, task) = try await startServer(context: fixture.serverContext()) { connection in
            try await connection.executeThenClose { inbound, outbound in
                var count = 0, sum: UInt64 = 0
                for try await buffer in inbound {
                    for byte in buffer.readableBytesView { sum = sum &* 31 &+ UInt64(byte) }
                    count += buffer.readableBytes
                    if count >= size { break }
                }
                try await outbound.write(ByteBuffer(string: "\(count) \(sum)"))
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
        let expected = payload.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) }
        let client = try await connect(port: port, context: fixture.clientContext())
        let watcher = WritabilityWatcher()
        try await client.channel.pipeline.addHandler(watcher, position: .first).get()
        let reply = try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: payload))
            for try await buffer in inbound { return String(buffer: buffer) }
            return ""
        }
        #expect(reply == "\(size) \(expected)")
        #expect(watcher.changes.load() >= 2, "the channel should have become unwritable and writable again")
        try await server.served(1)
    }

    @Test("NIOClientTCPBootstrap with TLSKitClientTLSProvider", arguments: allBackends)
    func universalBootstrap(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let (server, task) = try await startServer(context: fixture.serverContext {
            $0.applicationProtocols = ["x-test"]
        }) { connection in
            try await connection.executeThenClose { inbound, outbound in
                // The client speaks first, so the handshake is over when the server answers:
                // a close(mode: .all) during the handshake closes at once, as NIOSSL's does.
                var messages = inbound.makeAsyncIterator()
                #expect(try await messages.next().map { String(buffer: $0) } == "hello")
                try await outbound.write(ByteBuffer(string: "welcome"))
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)
        let provider = try TLSKitClientTLSProvider<ClientBootstrap>(
            context: fixture.clientContext { $0.applicationProtocols = ["x-test"] }, serverHostname: "localhost")
        let collector = Collector(greeting: "hello")
        let channel = try await NIOClientTCPBootstrap(ClientBootstrap(group: Self.group), tls: provider)
            .enableTLS()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
        #expect(collector.summary == "active handshakeCompleted(x-test) welcome shutdownCompleted")
        try await server.served(1)
    }

    @Test("our client against openssl s_server", arguments: allBackends)
    func clientAgainstOpenSSLServer(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try identityFiles(fixture.identity)
        defer { try? FileManager.default.removeItem(at: directory) }
        let peer = try Child(try tool("openssl"), [
            "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-www", "-naccept", "1", "-alpn", "http/1.1",
        ])
        try peer.waitForOutput("ACCEPT")
        let banner = peer.output
        let port = try #require(Int(banner.split(separator: "\n").first { $0.hasPrefix("ACCEPT") }?
            .split(separator: ":").last ?? ""), "\(banner)")
        // What the handshake established is read on the event loop as it completes: s_server
        // closes right after the page, and with the channel the handler may be gone before
        // a later read of the pipeline (seen: ChannelPipelineError.notFound).
        let handshake = Self.group.next().makePromise(of: Handshake.self)
        defer { handshake.fail(CancellationError()) }  // no leaked promise (no-op once completed)
        let client = try await ClientBootstrap(group: Self.group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSKitClientHandler(
                    context: fixture.clientContext { $0.applicationProtocols = ["http/1.1"] }, serverHostname: "localhost"))
                try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(handshake))
                return try Stream(wrappingChannelSynchronously: channel)
            }
        }
        let page = try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET / HTTP/1.0\r\n\r\n"))
            var page = ""
            do {
                for try await buffer in inbound { page += String(buffer: buffer) }
            } catch let error as TLSError where error.code == .unexpectedEOF {
                // s_server -www may close the socket without close_notify.
            }
            return page
        }
        #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
        // ALPN as our handler saw it: in the event and in the connection info...
        let completed = try await value(of: handshake.futureResult, within: .seconds(60), "the client's handshake")
        #expect(completed.negotiatedProtocol == "http/1.1")
        let info = try #require(completed.info)
        #expect(info.negotiatedApplicationProtocol == "http/1.1")
        #expect(info.negotiatedVersion == .tls13)
        // ...and as s_server saw it: it prints what the client offered and what it chose
        // (its -www page does not show ALPN). -naccept 1: it exits after this connection,
        // its output then complete.
        #expect(peer.wait() == 0, "\(peer.errorOutput)")
        let alpnLines = peer.output.split(separator: "\n").filter { $0.hasPrefix("ALPN") }
        #expect(alpnLines == ["ALPN protocols advertised by the client: http/1.1", "ALPN protocols selected: http/1.1"],
                "\(peer.output)")
        // The page names the cipher suite the handler reported.
        let suite = try #require(info.cipherSuite)
        #expect(page.contains("\nNew, TLSv1.3, Cipher is \(suite)\n"), "\(page)")
    }

    @Test("curl, gnutls-cli and openssl s_client against our server", arguments: allBackends)
    func toolsAgainstOurServer(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let (directory, cert, _) = try identityFiles(fixture.identity)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, task) = try await startServer(context: fixture.serverContext {
            $0.applicationProtocols = ["http/1.1"]
        }) { connection in
            try await connection.executeThenClose { inbound, outbound in
                var request = ""
                for try await buffer in inbound {
                    request += String(buffer: buffer)
                    if request.contains("\r\n\r\n") { break }
                }
                let body = "hello from TLSKitNIO\n"
                try await outbound.write(ByteBuffer(string:
                    "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"))
            }
        }
        defer { task.cancel() }
        let port = try #require(server.port)

        // Child captures each tool's output until end of file, so a tool that prints the
        // page and exits at once is read whole (a Pipe handler could lag behind the exit).
        let curl = try Child(try tool("curl"), [
            "-sS", "--http1.1", "--cacert", cert, "--resolve", "localhost:\(port):127.0.0.1", "https://localhost:\(port)/",
        ])
        #expect(curl.wait() == 0, "\(curl.errorOutput)")
        #expect(curl.output == "hello from TLSKitNIO\n")

        let gnutls = try Child(try tool("gnutls-cli"), [
            "--x509cafile", cert, "--port", "\(port)", "localhost", "--logfile", "/dev/null",
        ])
        gnutls.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(throws: Never.self) { try gnutls.waitForOutput("hello from TLSKitNIO") }
        gnutls.stop()

        let sClient = try Child(try tool("openssl"), [
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", cert,
            "-verify_return_error", "-ign_eof",
        ])
        sClient.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(throws: Never.self) { try sClient.waitForOutput("hello from TLSKitNIO") }
        #expect(sClient.output.contains("Verify return code: 0 (ok)"), "\(sClient.output)")
        sClient.stop()
        try await server.served(3)
    }
}

/// A connection of a test server ended with an error: the test fails with it.
struct ServerFailure: Error, CustomStringConvertible {
    let connection: Int
    let error: any Error
    var description: String { "the server's connection \(connection) failed: \(error)" }
}

/// What `TLSUserEvent.handshakeCompleted` said, and the connection info read at that moment.
struct Handshake: Sendable {
    let negotiatedProtocol: String?
    let info: TLSKitConnectionInfo?
}

/// Completes a promise when the handshake completes, or fails it with the error or the
/// end of the channel that came first.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let promise: EventLoopPromise<Handshake>
    init(_ promise: EventLoopPromise<Handshake>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            do {
                let info = try context.pipeline.syncOperations.tlsKitConnectionInfo()
                promise.succeed(Handshake(negotiatedProtocol: negotiated, info: info))
            } catch {
                promise.fail(error)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }
    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }
}

/// Counts writability changes.
final class WritabilityWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let changes = AtomicCounter()
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        changes.increment()
        context.fireChannelWritabilityChanged()
    }
}

final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() { lock.lock(); value += 1; lock.unlock() }
    func load() -> Int { lock.lock(); defer { lock.unlock() }; return value }
}

/// Collects the TLS events and plaintext of a channel as one line.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let lock = NSLock()
    private var parts: [String] = []
    /// Written once the handshake completes, if set.
    private let greeting: String?
    init(greeting: String? = nil) { self.greeting = greeting }
    var summary: String { lock.lock(); defer { lock.unlock() }; return parts.joined(separator: " ") }
    private func add(_ part: String) { lock.lock(); parts.append(part); lock.unlock() }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { add(String(buffer: unwrapInboundIn(data))) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { add("error(\(error))") }
    func channelActive(context: ChannelHandlerContext) { add("active") }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted(let negotiated):
            add("handshakeCompleted(\(negotiated ?? "nil"))")
            if let greeting { context.writeAndFlush(NIOAny(ByteBuffer(string: greeting)), promise: nil) }
        case TLSUserEvent.shutdownCompleted: add("shutdownCompleted")
        default: context.fireUserInboundEventTriggered(event)
        }
    }
}
#endif
