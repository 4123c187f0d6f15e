#if NIO
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOTLS
import Testing
import TLSKit
@testable import TLSKitNIO

/// Counts the `read()` calls that reach the channel (placed first in the pipeline).
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// Back-pressure: the handler reads only when the pipeline asks (its own reads are the
/// handshake's and the wait for close_notify), and keeps no plaintext between two reads
/// of the channel — what a read decrypted is delivered before that read returns, and
/// what it holds is at most one partial record of ciphertext.
@Suite("TLSKitNIO back-pressure", .timeLimit(.minutes(10)))
struct BackPressureTests {
    static let record = 16_384

    @Test("EmbeddedChannel: reads only when asked, a read's records delivered before it returns", arguments: allBackends)
    func embedded(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let link = try EmbeddedPair(client: fixture.clientContext(), server: fixture.serverContext())
        let counter = ReadCounter()
        try link.client.pipeline.syncOperations.addHandler(counter, position: .first)
        try link.activate()
        try link.exchange()
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(nil)"])
        let afterHandshake = counter.reads  // EmbeddedChannel reports autoRead on: 0

        // Three records in one ciphertext buffer, fed as one channelRead without
        // channelReadComplete: all three are delivered before channelRead returns.
        for _ in 0..<3 { link.server.write(ByteBuffer(repeating: 0x41, count: Self.record), promise: nil) }
        link.server.flush()
        let three = try #require(try link.server.readOutbound(as: ByteBuffer.self))
        #expect(try link.server.readOutbound(as: ByteBuffer.self) == nil)
        #expect(recordTypes([three]) == [23, 23, 23])
        link.client.pipeline.fireChannelRead(three)
        #expect(link.clientEvents.received.count == 3 * Self.record)
        #expect(link.clientHandler.bufferedPlaintextBytes == 0)
        #expect(link.clientHandler.bufferedCiphertextBytes == 0)
        link.client.pipeline.fireChannelReadComplete()
        #expect(Array(link.clientEvents.events.dropFirst(2)) == ["read", "readComplete"])
        #expect(counter.reads == afterHandshake)  // nobody asked: no read

        // The application asks once; the channel brings part of a record: the handler
        // asks again (the application's read is unanswered), once.
        link.server.writeAndFlush(ByteBuffer(repeating: 0x42, count: Self.record), promise: nil)
        var one = try #require(try link.server.readOutbound(as: ByteBuffer.self))
        let head = one.readSlice(length: 100)!
        link.client.read()
        #expect(counter.reads == afterHandshake + 1)
        try link.client.writeInbound(head)
        #expect(counter.reads == afterHandshake + 2)
        #expect(link.clientEvents.received.count == 3 * Self.record)
        #expect(link.clientHandler.bufferedPlaintextBytes == 0)
        try link.client.writeInbound(one)
        #expect(link.clientEvents.received.count == 4 * Self.record)
        #expect(counter.reads == afterHandshake + 2)  // answered: no further read

        // Part of a record with no read pending: no read is issued.
        link.server.writeAndFlush(ByteBuffer(repeating: 0x43, count: Self.record), promise: nil)
        var another = try #require(try link.server.readOutbound(as: ByteBuffer.self))
        try link.client.writeInbound(another.readSlice(length: 100)!)
        #expect(counter.reads == afterHandshake + 2)
        #expect(link.clientHandler.bufferedCiphertextBytes + 100 <= Self.record + 256)
        try link.client.writeInbound(another)
        #expect(link.clientEvents.received.count == 5 * Self.record)
        #expect(Array(link.clientEvents.events.dropFirst(2)) == ["read", "readComplete", "read", "readComplete", "read", "readComplete"])
        #expect(counter.reads == afterHandshake + 2)
    }

    /// What the server side saw, filled on its event loop.
    final class Observations: @unchecked Sendable {  // touched on the server channel's loop only
        var readsAtHandshake = -1
        var readsAfterHandshakeBatch = -1
        var applicationReads = 0
        var plaintextBatches = 0
        var rawBatches = 0
        var rawBatchesAtHandshakeEnd = -1
        var readsAtEnd = -1
        var received = 0
        var maxPlaintextHeld = 0
        var maxCiphertextHeld = 0
        var handshakeDone = false

        /// The figures as they are now: the live object keeps changing on the loop after
        /// the test's last read (the close_notify exchange is one more raw batch).
        func copy() -> Observations {
            let copy = Observations()
            copy.readsAtHandshake = readsAtHandshake; copy.readsAfterHandshakeBatch = readsAfterHandshakeBatch
            copy.applicationReads = applicationReads; copy.plaintextBatches = plaintextBatches
            copy.rawBatches = rawBatches; copy.rawBatchesAtHandshakeEnd = rawBatchesAtHandshakeEnd
            copy.readsAtEnd = readsAtEnd; copy.received = received
            copy.maxPlaintextHeld = maxPlaintextHeld; copy.maxCiphertextHeld = maxCiphertextHeld
            copy.handshakeDone = handshakeDone
            return copy
        }
    }

    /// Sits between the read counter and the TLS handler: counts raw batches and, after
    /// each raw read, what the TLS handler kept.
    final class RawProbe: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let observations: Observations
        unowned let tls: TLSKitHandler
        init(_ observations: Observations, tls: TLSKitHandler) { self.observations = observations; self.tls = tls }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.fireChannelRead(data)
            guard observations.handshakeDone else { return }
            observations.maxPlaintextHeld = max(observations.maxPlaintextHeld, tls.bufferedPlaintextBytes)
            observations.maxCiphertextHeld = max(observations.maxCiphertextHeld, tls.bufferedCiphertextBytes)
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            observations.rawBatches += 1
            context.fireChannelReadComplete()
        }
    }

    /// The server application: says "go" after the handshake, then reads `total` bytes,
    /// asking for each batch with `read()`.
    final class ServerApplication: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let observations: Observations
        let counter: ReadCounter
        let total: Int
        let done: EventLoopPromise<Observations>

        init(_ observations: Observations, counter: ReadCounter, total: Int, done: EventLoopPromise<Observations>) {
            self.observations = observations; self.counter = counter; self.total = total; self.done = done
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case TLSUserEvent.handshakeCompleted(_) = event else { return }
            observations.handshakeDone = true
            observations.readsAtHandshake = counter.reads
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "go")), promise: nil)
            // Runs after this read batch has ended (channelReadComplete included).
            context.eventLoop.assumeIsolated().execute {
                self.observations.readsAfterHandshakeBatch = self.counter.reads
                self.observations.rawBatchesAtHandshakeEnd = self.observations.rawBatches
                self.observations.applicationReads += 1
                context.read()
            }
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            observations.received += unwrapInboundIn(data).readableBytes
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            observations.plaintextBatches += 1
            if observations.received < total {
                observations.applicationReads += 1
                context.read()
            } else {
                // After this batch has ended: no read may follow the last one asked for.
                context.eventLoop.assumeIsolated().execute {
                    self.observations.readsAtEnd = self.counter.reads
                    self.done.succeed(self.observations.copy())
                    context.close(promise: nil)  // close_notify both ways: the client closes too
                }
            }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error) }
    }

    /// The client: sends `chunks` 16 KiB writes in one flush once the server says "go".
    final class ClientApplication: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let chunks: Int
        init(chunks: Int) { self.chunks = chunks }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            for _ in 0..<chunks {
                context.write(wrapOutboundOut(ByteBuffer(repeating: 0x44, count: BackPressureTests.record)), promise: nil)
            }
            context.flush()
        }
    }

    @Test("sockets, autoRead off: no read after the handshake until asked; each read answered, nothing kept",
          arguments: allBackends)
    func sockets(backend: Backend) async throws {
        let fixture = try Fixture(backend)
        let serverContext = try fixture.serverContext()
        let clientContext = try fixture.clientContext()
        let group = MultiThreadedEventLoopGroup.singleton
        let chunks = 16
        let observations = Observations()
        let loop = group.next()
        let done = loop.makePromise(of: Observations.self)
        // A guard against a hang, not a timed assertion: fails the test instead of waiting forever.
        let guardTimer = loop.scheduleTask(in: .seconds(60)) { done.fail(ChannelError.connectTimeout(.seconds(60))) }
        let server = try await ServerBootstrap(group: loop)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let counter = ReadCounter()
                    let tls = TLSKitServerHandler(context: serverContext)
                    try channel.pipeline.syncOperations.addHandlers([
                        counter, RawProbe(observations, tls: tls), tls,
                        ServerApplication(observations, counter: counter, total: chunks * Self.record, done: done),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let client = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        TLSKitClientHandler(context: clientContext, serverHostname: "localhost"),
                        ClientApplication(chunks: chunks),
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // The figures when the last batch had ended, before the closing exchange.
        let seen = try await done.futureResult.get()
        guardTimer.cancel()
        #expect(seen.received == chunks * Self.record)
        // The handler issued no read of its own once the handshake was over.
        #expect(seen.readsAfterHandshakeBatch == seen.readsAtHandshake)
        // Every read after the handshake is the application's, or the handler's answer to
        // a batch that held no whole record while the application's read was pending.
        #expect(seen.readsAtEnd - seen.readsAtHandshake
                == seen.applicationReads + (seen.rawBatches - seen.rawBatchesAtHandshakeEnd - seen.plaintextBatches))
        #expect(seen.maxPlaintextHeld == 0)
        #expect(seen.maxCiphertextHeld < Self.record + 256)
        #expect(seen.applicationReads >= 1 && seen.plaintextBatches >= 1)
        // The server closed (close_notify both ways): the client's channel follows.
        try await value(of: client.closeFuture, within: .seconds(60), "the client channel to close after the server's close")
        try await server.close()
    }
}
#endif
