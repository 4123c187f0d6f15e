// FakeTLS as an outside backend under TLSKit's own drivers: the blocking TLSSocket
// helpers over loopback TCP, and TLSKitNIO's handlers in a real NIO pipeline. Neither
// driver knows this backend: they see only TLSContext, as they would any backend.
import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import Testing
import TLSCore
import TLSKitNIO
import FakeTLS

@Suite("FakeTLS under TLSSocket and TLSKitNIO")
struct OutsideBackendTests {
    @Test("TLSSocket and TLSListener: handshake, ALPN and an echo over loopback, each version", arguments: [TLSVersion.tls12, .tls13])
    func socket(version: TLSVersion) throws {
        let identity = try Identity.make()
        var server = identity.serverConfiguration()
        server.applicationProtocols = ["echo"]
        server.maximumTLSVersion = version
        let serverContext = try FakeTLSBackend.makeContext(server)
        var client = identity.clientConfiguration()
        client.applicationProtocols = ["echo"]
        let clientContext = try FakeTLSBackend.makeContext(client)
        let listener = try TLSListener()
        let port = listener.port
        // The server runs on a thread of its own: the blocking helpers must not hold one
        // of the few threads of Swift's cooperative pool (the other case runs too).
        let served = Served()
        Thread.detachNewThread {
            served.finish(Result {
                let socket = try listener.accept(context: serverContext, timeout: .seconds(10))
                let request = try socket.read()
                try socket.write(request.reversed())
                try socket.shutdown(waitForPeer: true)
                return socket.connection.negotiatedVersion
            })
        }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: clientContext, serverName: "localhost",
                                           timeout: .seconds(10))
        #expect(socket.connection.negotiatedApplicationProtocol == "echo")
        #expect(socket.connection.context.backendID == FakeTLSBackend.id)
        try socket.write(Array("hello".utf8))
        #expect(try socket.read() == Array("olleh".utf8))
        #expect(try socket.read() == [], "the server's close_notify ends the data")
        try socket.shutdown()
        #expect(try served.wait() == version)
    }

    @Test("TLSKitNIO client and server handlers over loopback: handshake event with ALPN, echo, close_notify both ways")
    func nio() async throws {
        let identity = try Identity.make()
        var server = identity.serverConfiguration()
        server.applicationProtocols = ["h2"]
        let serverContext = try FakeTLSBackend.makeContext(server)
        var client = identity.clientConfiguration()
        client.applicationProtocols = ["h2"]
        let clientContext = try FakeTLSBackend.makeContext(client)

        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([TLSKitServerHandler(context: serverContext), Echo()])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()

        let recorder = Recorder(eventLoop: group.next())
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        TLSKitClientHandler(context: clientContext, serverHostname: "localhost"), recorder,
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: listener.localAddress!.port!).get()
        #expect(try await recorder.handshake.futureResult.get() == "h2")
        try await channel.writeAndFlush(ByteBuffer(string: "over FakeTLS")).get()
        #expect(try await recorder.reply.futureResult.get() == "over FakeTLS")
        #expect(try await channel.tlsKitConnectionInfo().get()?.negotiatedVersion == .tls13)
        try await channel.close().get()
        #expect(try await recorder.shutdown.futureResult.get())
        try await listener.close().get()
    }
}

/// The server thread's result, waited for by the test.
private final class Served: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<TLSVersion?, any Error>?
    func finish(_ result: Result<TLSVersion?, any Error>) {
        self.result = result
        done.signal()
    }
    func wait() throws -> TLSVersion? {
        done.wait()
        return try result!.get()
    }
}

/// Echoes each plaintext read back.
private final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// The client side's observations: the handshake event's ALPN, the first reply, and
/// whether TLS shut down cleanly (close_notify both ways).
private final class Recorder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let handshake: EventLoopPromise<String?>
    let reply: EventLoopPromise<String>
    let shutdown: EventLoopPromise<Bool>

    init(eventLoop: any EventLoop) {
        handshake = eventLoop.makePromise()
        reply = eventLoop.makePromise()
        shutdown = eventLoop.makePromise()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? TLSUserEvent {
        case .handshakeCompleted(let negotiatedProtocol): handshake.succeed(negotiatedProtocol)
        case .shutdownCompleted: shutdown.succeed(true)
        case nil: break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reply.succeed(String(buffer: unwrapInboundIn(data)))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        reply.fail(error)
        shutdown.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        shutdown.succeed(false)
        context.fireChannelInactive()
    }
}
