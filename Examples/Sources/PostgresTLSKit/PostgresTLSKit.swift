// postgres-nio over TLSKitNIO. Copy this file into your project (it needs PostgresNIO,
// NIOPosix and TLSKitNIO), or depend on this target.
//
// PostgreSQL does not start TLS on connect: the client sends SSLRequest (8 bytes: length 8,
// code 80877103) and the server answers one byte, 'S' (go ahead) or 'N' (no TLS). Only then
// does the TLS handshake begin. postgres-nio does this itself with NIOSSL only, so here we
// do it before handing postgres-nio the channel, with its TLS disabled:
//
//   let connection = try await PostgresTLSKit.connect(
//       host: "db.example.com", port: 5432, context: context, serverHostname: "db.example.com",
//       username: "app", password: "secret", database: "app", logger: logger)
//
// Anything but exactly one 'S' is refused: 'N' (the server has no TLS: we never fall back to
// plaintext) and, per CVE-2021-23222, any byte that arrived after the 'S' before the
// handshake (a man in the middle could inject plaintext that would be read as if it had
// come through TLS).
public import Logging
public import NIOCore
import NIOPosix
import NIOTLS
public import PostgresNIO
public import TLSKit
import TLSKitNIO

/// How the TLS set-up before PostgreSQL's startup failed.
public enum PostgresTLSKitError: Error, Equatable, CustomStringConvertible {
    /// The server answered 'N' to SSLRequest: it does not accept TLS connections.
    case tlsNotSupportedByServer
    /// The server's answer to SSLRequest was neither 'S' nor 'N'.
    case unexpectedSSLResponse(UInt8)
    /// Bytes followed the 'S' before the TLS handshake (CVE-2021-23222): refused.
    case bytesAfterSSLResponse(Int)
    /// The connection closed before the answer or before the handshake completed.
    case closedDuringTLSSetup

    /// What went wrong, in words.
    public var description: String {
        switch self {
        case .tlsNotSupportedByServer:
            return "the PostgreSQL server answered 'N' to SSLRequest: it does not accept TLS (no plaintext fallback)"
        case .unexpectedSSLResponse(let byte):
            return "the PostgreSQL server answered SSLRequest with byte 0x\(String(byte, radix: 16)), expected 'S' or 'N'"
        case .bytesAfterSSLResponse(let count):
            return "\(count) unexpected byte(s) followed the server's 'S' before the TLS handshake (CVE-2021-23222): refused"
        case .closedDuringTLSSetup:
            return "the connection closed before TLS was established"
        }
    }
}

/// Connecting postgres-nio through TLSKit.
public enum PostgresTLSKit {
    /// The SSLRequest message: Int32 length 8, Int32 code 80877103 (1234 << 16 | 5679).
    public static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]

    /// Opens a TCP connection, negotiates TLS with SSLRequest and `context` (a TLSKit client
    /// context of either backend; set its `certificateChain`/`privateKey` for client
    /// certificate authentication), then lets postgres-nio authenticate over it.
    /// - Throws: ``PostgresTLSKitError``, a `TLSError` from the handshake, or postgres-nio's errors.
    public static func connect(
        host: String, port: Int = 5432,
        context: TLSContext, serverHostname: String?,
        username: String, password: String? = nil, database: String? = nil,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PostgresConnection {
        let channel = try await establishTLS(host: host, port: port, context: context,
                                             serverHostname: serverHostname, eventLoopGroup: eventLoopGroup)
        let configuration = PostgresConnection.Configuration(
            establishedChannel: channel, tls: .disable, username: username, password: password, database: database)
        return try await PostgresConnection.connect(on: channel.eventLoop, configuration: configuration, id: 1, logger: logger)
    }

    /// Connects and returns the channel once the TLS handshake is complete: SSLRequest, one
    /// 'S', the TLSKit client handler. The channel is closed on any failure.
    public static func establishTLS(
        host: String, port: Int, context: TLSContext, serverHostname: String?,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> any Channel {
        // Made here so that a bad host name fails before any connection.
        _ = try TLSKitClientHandler(context: context, serverHostname: serverHostname)
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .connect(host: host, port: port).get()
        let ready = channel.eventLoop.makePromise(of: Void.self)
        do {
            try await channel.eventLoop.submit {
                let handler = SSLRequestHandler(ready: ready) {
                    try TLSKitClientHandler(context: context, serverHostname: serverHostname)
                }
                try channel.pipeline.syncOperations.addHandler(handler)
            }.get()
            try await ready.futureResult.get()
            return channel
        } catch {
            ready.fail(error)
            try? await channel.close()
            throw error
        }
    }
}

/// Sends SSLRequest, checks the one-byte answer, then replaces itself with the TLS handler
/// and waits for `handshakeCompleted`.
final class SSLRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let ready: EventLoopPromise<Void>
    private let makeTLSHandler: () throws -> TLSKitClientHandler
    private var answered = false

    init(ready: EventLoopPromise<Void>, makeTLSHandler: @escaping () throws -> TLSKitClientHandler) {
        self.ready = ready
        self.makeTLSHandler = makeTLSHandler
    }

    func handlerAdded(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: PostgresTLSKit.sslRequest)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else {
            // Bytes after the 'S' but in a later read: the TLS handler is in place already and
            // receives them (as handshake records), so this is not reached. Refuse anyway.
            fail(context, .bytesAfterSSLResponse(unwrapInboundIn(data).readableBytes))
            return
        }
        answered = true
        var buffer = unwrapInboundIn(data)
        guard let byte = buffer.readInteger(as: UInt8.self) else { return }
        switch byte {
        case UInt8(ascii: "S") where buffer.readableBytes == 0:
            do {
                let sync = context.pipeline.syncOperations
                try sync.addHandler(HandshakeWaiter(ready: ready), position: .after(self))
                try sync.addHandler(try makeTLSHandler(), position: .after(self))
                sync.removeHandler(context: context, promise: nil)
            } catch {
                ready.fail(error)
                context.close(promise: nil)
            }
        case UInt8(ascii: "S"): fail(context, .bytesAfterSSLResponse(buffer.readableBytes))
        case UInt8(ascii: "N"): fail(context, .tlsNotSupportedByServer)
        default: fail(context, .unexpectedSSLResponse(byte))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(PostgresTLSKitError.closedDuringTLSSetup)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        context.close(promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: PostgresTLSKitError) {
        ready.fail(error)
        context.close(promise: nil)
    }
}

/// Completes `ready` on `TLSUserEvent.handshakeCompleted`, then leaves the pipeline to postgres-nio.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let ready: EventLoopPromise<Void>
    private var done = false

    init(ready: EventLoopPromise<Void>) { self.ready = ready }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event, !done {
            done = true
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            ready.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done { done = true; ready.fail(error) }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { done = true; ready.fail(PostgresTLSKitError.closedDuringTLSSetup) }
        context.fireChannelInactive()
    }
}
