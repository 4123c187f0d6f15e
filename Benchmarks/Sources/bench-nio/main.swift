// (Why one file of 400+ lines: an executable's main.swift, one benchmark program whose
// scenarios share its argument parsing and its in-memory and loopback drivers.)
// bench-nio: the benchmark scenarios through SwiftNIO TLS handlers: swift-nio-ssl's
// NIOSSLHandler (BoringSSL, the default), or with `--handler tlskit --backend B`
// TLSKitNIO's handlers over TLSKit's OpenSSL or GnuTLS backend. Two handlers drive each
// other over EmbeddedChannel (in memory) or over loopback channels on one event loop
// (TCP); chain and host-name verification as in the other programs. NIOSSL's key
// exchange is restricted to x25519 (`curves = [.x25519]`); TLSKit's contexts are
// bench-tlskit's (BenchTLSKit), so that TLSKitNIO / raw TLSKit is the handler's cost.
//
//   bench-nio handshake --transport memory|tcp --key ecdsa|rsa --count N --certs DIR [--handler tlskit --backend B]
//   bench-nio resume                         (swift-nio-ssl has no resumption API: n/a)
//   bench-nio bulk      --transport memory|tcp --mib M --certs DIR [--cipher aes128] [--flush-every N] [--handler tlskit --backend B]
//   bench-nio idle      --count N --certs DIR [--handler tlskit --backend B]
//   bench-nio latency   --count N --connections K --certs DIR [--handler tlskit --backend B]
import BenchSupport
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import NIOTLS

let arguments = BenchArguments()
let maxSteps = 100_000
let chunkSize = 16_384

func makeNIOSSLContexts() -> (client: NIOSSLContext, server: NIOSSLContext) {
    let (certificate, key, ca) = arguments.certificatePaths
    do {
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .file(ca)
        client.curves = [.x25519]
        let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        server.curves = [.x25519]
        return (try NIOSSLContext(configuration: client), try NIOSSLContext(configuration: server))
    } catch {
        benchFail("context: \(error)")
    }
}

/// NIOSSL's handlers, or TLSKitNIO's with `--handler tlskit`.
func makeHandlers() -> Handlers {
    if arguments["handler", default: "nio-ssl"] == "tlskit" { return tlsKitHandlers(arguments) }
    let contexts = makeNIOSSLContexts()
    return Handlers(
        makeClient: { try NIOSSLClientHandler(context: contexts.client, serverHostname: "localhost") },
        makeServer: { NIOSSLServerHandler(context: contexts.server) },
        version: { (try? $0.handler(type: NIOSSLHandler.self))?.tlsVersion.map { "\($0)" } })
}

/// Notes the end of the handshake and the negotiated suite.
final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    var done = false
    var cipher = "unknown"
    var version = "unknown"
    let onDone: ((ChannelHandlerContext) -> Void)?
    let handlers: Handlers?

    init(_ handlers: Handlers? = nil, onDone: ((ChannelHandlerContext) -> Void)? = nil) {
        self.handlers = handlers
        self.onDone = onDone
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            done = true
            handlers?.version(context.pipeline.syncOperations).map { version = $0 }
            onDone?(context)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

// MARK: - In memory: EmbeddedChannel

final class EmbeddedPair {
    let client = EmbeddedChannel()
    let server = EmbeddedChannel()
    let clientWatcher: HandshakeWatcher
    let serverWatcher = HandshakeWatcher()
    /// The server's first flight as sent (its ServerHello names the suite).
    var serverFirstFlight: [UInt8]?

    init(_ handlers: Handlers) {
        clientWatcher = HandshakeWatcher(handlers)
        do {
            try client.pipeline.syncOperations.addHandler(handlers.makeClient())
            try client.pipeline.syncOperations.addHandler(clientWatcher)
            try server.pipeline.syncOperations.addHandler(handlers.makeServer())
            try server.pipeline.syncOperations.addHandler(serverWatcher)
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
            _ = client.connect(to: address)
            _ = server.connect(to: address)
        } catch {
            benchFail("pipeline: \(error)")
        }
    }

    /// Moves ciphertext both ways; returns the number of buffers moved.
    @discardableResult
    func exchange() -> Int {
        var moved = 0
        do {
            while let buffer = try client.readOutbound(as: ByteBuffer.self) {
                try server.writeInbound(buffer)
                moved += 1
            }
            while let buffer = try server.readOutbound(as: ByteBuffer.self) {
                if serverFirstFlight == nil { serverFirstFlight = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) }
                try client.writeInbound(buffer)
                moved += 1
            }
        } catch {
            benchFail("exchange: \(error)")
        }
        return moved
    }

    func handshake() {
        for _ in 0..<maxSteps {
            let moved = exchange()
            if clientWatcher.done && serverWatcher.done && moved == 0 { return }
        }
        benchFail("the handshake did not finish")
    }

    func drainPlaintext() -> Int {
        var total = 0
        while let buffer = try? server.readInbound(as: ByteBuffer.self) { total += buffer.readableBytes }
        return total
    }

    /// Closes both ends: close_notify both ways, then the shutdown timers fire.
    func finish() {
        client.close(promise: nil)
        for _ in 0..<8 where exchange() > 0 {}
        server.close(promise: nil)
        for _ in 0..<8 where exchange() > 0 {}
        client.embeddedEventLoop.advanceTime(by: .seconds(60))
        server.embeddedEventLoop.advanceTime(by: .seconds(60))
    }
}

// MARK: - Over loopback: one event loop drives both ends

/// Runs `count` handshakes one after another on the event loop, each over a new TCP
/// connection; both ends must report completion before the next starts.
final class HandshakeChain: @unchecked Sendable {  // touched only on `loop`
    let loop: any EventLoop
    let handlers: Handlers
    let port: Int
    var remaining: Int
    var clientDone = false, serverDone = false
    var clientChannel: (any Channel)?
    var keepOpen: [any Channel] = []
    let keep: Bool
    let finished: EventLoopPromise<Void>

    init(loop: any EventLoop, handlers: Handlers, port: Int, count: Int, keep: Bool) {
        self.loop = loop
        self.handlers = handlers
        self.port = port
        self.remaining = count
        self.keep = keep
        self.finished = loop.makePromise()
    }

    func start() -> EventLoopFuture<Void> {
        loop.execute { self.next() }
        return finished.futureResult
    }

    func next() {
        if remaining == 0 {
            finished.succeed(())
            return
        }
        remaining -= 1
        clientDone = false
        serverDone = false
        let handlers = self.handlers
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handlers.makeClient())
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher { _ in
                        self.clientDone = true
                        self.check()
                    })
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel): self.clientChannel = channel
                case .failure(let error): self.finished.fail(error)
                }
            }
    }

    /// Called by the server's child channel when its handshake is complete.
    func serverCompleted(_ channel: any Channel) {
        serverDone = true
        if keep { keepOpen.append(channel) } else { channel.close(promise: nil) }
        check()
    }

    func check() {
        guard clientDone && serverDone, let client = clientChannel else {
            if clientDone && serverDone { loop.execute { self.check() } }
            return
        }
        clientChannel = nil
        if keep { keepOpen.append(client) } else { client.close(promise: nil) }
        next()
    }
}

func serverBootstrap(group: any EventLoopGroup, handlers: Handlers,
                     childHandlers: @escaping @Sendable (any Channel) throws -> Void) throws -> any Channel {
    try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(handlers.makeServer())
                try childHandlers(channel)
            }
        }
        .bind(host: "127.0.0.1", port: 0).wait()
}

/// The chain the server's child channels report to (set before each run).
final class ChainBox: @unchecked Sendable {  // written before connections start, read on the loop
    var chain: HandshakeChain?
}

func runChain(group: MultiThreadedEventLoopGroup, handlers: Handlers,
              box: ChainBox, port: Int, count: Int, keep: Bool) throws -> HandshakeChain {
    let chain = HandshakeChain(loop: group.next(), handlers: handlers, port: port, count: count, keep: keep)
    box.chain = chain
    try chain.start().wait()
    return chain
}

func tcpHandshakes(count: Int) throws {
    let handlers = makeHandlers()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let box = ChainBox()
    let server = try serverBootstrap(group: group, handlers: handlers) { channel in
        try channel.pipeline.syncOperations.addHandler(HandshakeWatcher { context in
            box.chain?.serverCompleted(context.channel)
        })
    }
    let port = server.localAddress!.port!
    _ = try runChain(group: group, handlers: handlers, box: box, port: port, count: count / 10 + 1, keep: false)
    let start = benchNow()
    _ = try runChain(group: group, handlers: handlers, box: box, port: port, count: count, keep: false)
    let elapsed = benchNow() - start
    report(result: formatted(Double(count) / elapsed), unit: "handshakes/s", [("group", "X25519(configured)")])
    try server.close().wait()
}

func handshakes() throws {
    let count = arguments.int("count", default: 1000)
    guard arguments.inMemory else { return try tcpHandshakes(count: count) }
    let handlers = makeHandlers()
    let probe = EmbeddedPair(handlers)
    probe.handshake()
    let fields = [("group", "X25519(configured)"), ("version", probe.clientWatcher.version)]
    probe.finish()
    for _ in 0..<(count / 10 + 1) {
        let pair = EmbeddedPair(handlers)
        pair.handshake()
        pair.finish()
    }
    let allocations = allocationCount()
    let start = benchNow()
    for _ in 0..<count {
        let pair = EmbeddedPair(handlers)
        pair.handshake()
        pair.finish()
    }
    let elapsed = benchNow() - start
    var all = fields
    if let perOperation = allocationsPerOperation(allocations, allocationCount(), operations: count) {
        all.append(perOperation)
    }
    report(result: formatted(Double(count) / elapsed), unit: "handshakes/s", all)
}

// MARK: - Bulk

func memoryBulk(chunks: Int, warmup: Int) {
    let pair = EmbeddedPair(makeHandlers())
    pair.handshake()
    var buffer = pair.client.allocator.buffer(capacity: chunkSize)
    buffer.writeRepeatingByte(0x5A, count: chunkSize)
    var received = 0
    var allocations: Double?
    var start = 0.0
    for index in 0..<(chunks + warmup) {
        if index == warmup {
            allocations = allocationCount()
            start = benchNow()
        }
        do {
            try pair.client.writeOutbound(buffer)
        } catch {
            benchFail("write: \(error)")
        }
        pair.exchange()
        received += pair.drainPlaintext()
    }
    let elapsed = benchNow() - start
    guard received == (chunks + warmup) * chunkSize else { benchFail("bytes lost: \(received)") }
    var fields = [("version", pair.clientWatcher.version),
                  ("cipher", cipherSuite(inServerFlight: pair.serverFirstFlight ?? []))]
    if let perOperation = allocationsPerOperation(allocations, allocationCount(), operations: chunks) {
        fields.append(perOperation)
    }
    report(result: formatted(Double(chunks * chunkSize) / 1e6 / elapsed), unit: "MB/s", fields)
    pair.finish()
}

/// Client side of the TCP bulk run: writes 16 KiB buffers while the channel is writable,
/// flushing after every `flushEvery` of them (0: once, after the last write it can make).
///
/// With a flush per write (the default, as bench-tlskit writes each chunk), the TLS handler
/// encrypts as the data goes and the channel's watermarks stop the writer: encryption and
/// decryption are both inside the timed part. With `--flush-every 0` the channel stays
/// writable (a TLS handler buffers unflushed writes), so the whole transfer is encrypted
/// at one flush before the first byte is read: only the reading end is timed.
final class BulkWriter: ChannelInboundHandler, @unchecked Sendable {  // used on its channel's loop only
    typealias InboundIn = ByteBuffer
    var remaining: Int
    var buffer: ByteBuffer?
    let flushEvery: Int

    init(chunks: Int, flushEvery: Int) {
        remaining = chunks
        self.flushEvery = flushEvery
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            var buffer = context.channel.allocator.buffer(capacity: chunkSize)
            buffer.writeRepeatingByte(0x5A, count: chunkSize)
            self.buffer = buffer
            pump(context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context)
        context.fireChannelWritabilityChanged()
    }

    func pump(_ context: ChannelHandlerContext) {
        guard let buffer else { return }
        var unflushed = 0
        while remaining > 0 && context.channel.isWritable {
            remaining -= 1
            context.write(wrapOutboundOut(buffer), promise: nil)
            unflushed += 1
            if unflushed == flushEvery {
                context.flush()
                unflushed = 0
            }
        }
        if unflushed > 0 { context.flush() }
    }

    typealias OutboundOut = ByteBuffer
}

/// Server side: counts plaintext, notes the time after the warm-up and at the end.
final class BulkReader: ChannelInboundHandler, @unchecked Sendable {  // used on its channel's loop only
    typealias InboundIn = ByteBuffer
    let warmupBytes: Int
    let totalBytes: Int
    var received = 0
    var start = 0.0
    let done: EventLoopPromise<Double>

    init(warmupBytes: Int, totalBytes: Int, done: EventLoopPromise<Double>) {
        self.warmupBytes = warmupBytes
        self.totalBytes = totalBytes
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let before = received
        received += unwrapInboundIn(data).readableBytes
        if before < warmupBytes && received >= warmupBytes { start = benchNow() }
        if received >= totalBytes { done.succeed(benchNow() - start) }
    }
}

func tcpBulk(chunks: Int, warmup: Int) throws {
    let handlers = makeHandlers()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let done = group.next().makePromise(of: Double.self)
    let total = (chunks + warmup) * chunkSize
    let server = try serverBootstrap(group: group, handlers: handlers) { channel in
        try channel.pipeline.syncOperations.addHandler(
            BulkReader(warmupBytes: warmup * chunkSize, totalBytes: total, done: done))
    }
    let client = try ClientBootstrap(group: group)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(handlers.makeClient())
                try channel.pipeline.syncOperations.addHandler(
                    BulkWriter(chunks: chunks + warmup, flushEvery: arguments.int("flush-every", default: 1)))
            }
        }
        .connect(host: "127.0.0.1", port: server.localAddress!.port!).wait()
    let elapsed = try done.futureResult.wait()
    report(result: formatted(Double(chunks * chunkSize) / 1e6 / elapsed), unit: "MB/s")
    try client.close().wait()
    try server.close().wait()
}

func bulk() throws {
    let chunks = arguments.int("mib", default: 256) * 1024 * 1024 / chunkSize
    let warmup = chunks / 16 + 1
    if arguments.inMemory { memoryBulk(chunks: chunks, warmup: warmup) } else { try tcpBulk(chunks: chunks, warmup: warmup) }
}

// MARK: - Request/response

/// Echoes what it reads, flushed once per read batch.
final class EchoHandler: ChannelInboundHandler, @unchecked Sendable {  // used on its channel's loop only
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }
}

/// Sends 32 bytes once the handshake completed, waits for all 32 back, `count` times;
/// the round trips (µs) complete `done`.
final class PingClient: ChannelInboundHandler, @unchecked Sendable {  // used on its channel's loop only
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let size = 32
    var remaining: Int
    var times: [Double] = []
    var got = 0
    var start = 0.0
    var message: ByteBuffer?
    let done: EventLoopPromise<[Double]>

    init(count: Int, done: EventLoopPromise<[Double]>) {
        remaining = count
        times.reserveCapacity(count)
        self.done = done
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            var buffer = context.channel.allocator.buffer(capacity: Self.size)
            buffer.writeRepeatingByte(0x61, count: Self.size)
            message = buffer
            send(context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func send(_ context: ChannelHandlerContext) {
        got = 0
        start = benchNow()
        context.writeAndFlush(wrapOutboundOut(message!), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        got += unwrapInboundIn(data).readableBytes
        guard got >= Self.size else { return }
        times.append((benchNow() - start) * 1e6)
        remaining -= 1
        if remaining > 0 { send(context) } else { done.succeed(times) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}

/// Request/response latency through the handlers: an echo server on one event loop, a
/// client on another (two threads, as bench-tlskit's two blocking threads), loopback with
/// `TCP_NODELAY` (NIO's default). `result` is the median round trip of 32 bytes on an
/// established connection (µs), `p99` its 99th percentile, `first` the median of the
/// first round trip on each of K fresh connections.
func latency() throws {
    let count = arguments.int("count", default: 2000)
    let connections = arguments.int("connections", default: 20)
    let handlers = makeHandlers()
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer {
        try? clientGroup.syncShutdownGracefully()
        try? serverGroup.syncShutdownGracefully()
    }
    let server = try serverBootstrap(group: serverGroup, handlers: handlers) { channel in
        try channel.pipeline.syncOperations.addHandler(EchoHandler())
    }
    let port = server.localAddress!.port!
    func pings(_ count: Int) throws -> [Double] {
        let done = clientGroup.next().makePromise(of: [Double].self)
        let client = try ClientBootstrap(group: clientGroup)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handlers.makeClient())
                    try channel.pipeline.syncOperations.addHandler(PingClient(count: count, done: done))
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        let times = try done.futureResult.wait()
        try? client.close().wait()
        return times
    }
    var firsts = try (0..<connections).map { _ in try pings(1)[0] }
    var times = Array(try pings(count + count / 10 + 1).dropFirst(count / 10 + 1))
    times.sort()
    firsts.sort()
    report(result: formatted(times[(times.count - 1) / 2]), unit: "us", [
        ("p99", formatted(times[min(times.count - 1, times.count * 99 / 100)])),
        ("first", formatted(firsts[(firsts.count - 1) / 2])),
    ])
    try server.close().wait()
}

// MARK: - Idle connections

func idle() throws {
    let count = arguments.int("count", default: 1000)
    bench_raise_nofile()
    let handlers = makeHandlers()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let box = ChainBox()
    let server = try serverBootstrap(group: group, handlers: handlers) { channel in
        try channel.pipeline.syncOperations.addHandler(HandshakeWatcher { context in
            box.chain?.serverCompleted(context.channel)
        })
    }
    let port = server.localAddress!.port!
    _ = try runChain(group: group, handlers: handlers, box: box, port: port, count: 8, keep: false)
    let rss = bench_rss_bytes(), heap = bench_heap_bytes()
    let chain = try runChain(group: group, handlers: handlers, box: box, port: port, count: count, keep: true)
    let rssAfter = bench_rss_bytes(), heapAfter = bench_heap_bytes()
    report(result: formatted(Double(rssAfter - rss) / Double(2 * count), decimals: 0), unit: "bytes/connection", [
        ("heap_per_connection", formatted(Double(heapAfter - heap) / Double(2 * count), decimals: 0)),
        ("connections", String(2 * count)),
    ])
    let channels = try group.next().submit { chain.keepOpen }.wait()
    for channel in channels { channel.close(promise: nil) }
    try server.close().wait()
}

do {
    switch arguments.scenario {
    case "handshake": try handshakes()
    case "bulk": try bulk()
    case "idle": try idle()
    case "resume":
        report(result: "n/a", unit: "handshakes/s", [("note", "swift-nio-ssl-has-no-resumption-API")])
    case "latency": try latency()
    default:
        benchFail("usage: bench-nio handshake|resume|bulk|idle|latency [options]")
    }
} catch {
    benchFail("\(error)")
}
