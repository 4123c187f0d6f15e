// Hummingbird 2 over TLSKitNIO. Copy this file into your project (it needs HummingbirdCore,
// HummingbirdHTTP2, NIOHTTP2, NIOTLS and TLSKitNIO), or depend on this target.
//
//   let context = try OpenSSLBackend.makeContext(.makeServerConfiguration(identity: identity))
//   let app = Application(router: router, server: .http1TLSKit(context: context))           // HTTP/1.1
//   let app = Application(router: router, server: try .http2UpgradeTLSKit(context: context)) // h2 + http/1.1 by ALPN
//
// It follows HummingbirdTLS's `TLSChannel`: the TLS handler is added in `setup`, then the
// base channel sets up the rest of the pipeline.
public import HummingbirdCore
public import HummingbirdHTTP2
public import Logging
public import NIOCore
import NIOHTTP2
import NIOTLS
public import TLSKit
import TLSKitNIO

/// A `ServerChildChannel` that puts a ``TLSKitServerHandler`` in front of another child
/// channel (HTTP/1.1, or anything else Hummingbird serves): HummingbirdTLS's `TLSChannel`
/// over TLSKit instead of NIOSSL.
public struct TLSKitChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    /// The base channel's value: TLS adds nothing the handler needs.
    public typealias Value = BaseChannel.Value

    /// The TLSKit server context every connection's handler is made from.
    public let context: TLSContext
    @usableFromInline var baseChannel: BaseChannel

    /// Wraps `baseChannel` with TLS from `context` (a server context of either backend).
    public init(_ baseChannel: BaseChannel, context: TLSContext) {
        self.baseChannel = baseChannel
        self.context = context
    }

    /// Adds the TLSKit handler first, then lets the base channel configure the pipeline.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TLSKitServerHandler(context: context))
            try channel.pipeline.syncOperations.addHandler(TLSKitHandshakeFailureLogger(logger: logger))
        }.flatMap {
            self.baseChannel.setup(channel: channel, logger: logger)
        }
    }

    /// Handles the connection as the base channel does.
    public func handle(value: BaseChannel.Value, logger: Logger) async {
        await baseChannel.handle(value: value, logger: logger)
    }
}

extension TLSKitChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    /// The base channel's responder.
    public var responder: HTTPChannelHandler.Responder { baseChannel.responder }
}

/// HTTP/1.1 and HTTP/2 on one TLS port, chosen by ALPN: HummingbirdHTTP2's
/// `HTTP2UpgradeChannel` over TLSKit. The TLSKit handler reports the negotiated protocol
/// in `TLSUserEvent.handshakeCompleted`, which NIOHTTP2's
/// `configureHTTP2AsyncSecureUpgrade` turns into an HTTP/1.1 or an HTTP/2 pipeline.
public struct TLSKitHTTP2UpgradeChannel: HTTPChannelHandler {
    /// What the connection became after ALPN.
    public struct Value: ServerChildChannelValue {
        let negotiatedHTTPVersion: EventLoopFuture<NIONegotiatedHTTPVersion<HTTP1Channel.Value, HTTP2Channel.Value>>
        /// The connection's channel.
        public let channel: any Channel
    }

    /// The TLSKit server context; its configuration offers `h2` and `http/1.1`.
    public let context: TLSContext
    private let http1: HTTP1Channel
    private let http2: HTTP2Channel

    /// The responder both protocols answer with.
    public var responder: Responder { http1.responder }

    /// - Parameters:
    ///   - context: a server context whose `applicationProtocols` include `"h2"` (and
    ///     normally `"http/1.1"`); see ``TLSConfiguration/withHTTP2ALPN()``.
    ///   - configuration: HummingbirdHTTP2's channel configuration (timeouts, stream settings).
    /// - Throws: `TLSError` (`invalidConfiguration`) when the context does not offer `h2`:
    ///   every client would silently fall back to HTTP/1.1.
    public init(context: TLSContext, configuration: HTTP2ChannelConfiguration = .init(), responder: @escaping Responder) throws {
        try Self.checkALPN(context)
        self.context = context
        self.http1 = HTTP1Channel(responder: responder, configuration: configuration.streamConfiguration)
        self.http2 = HTTP2Channel(responder: responder, configuration: configuration)
    }

    static func checkALPN(_ context: TLSContext) throws {
        guard context.configuration.applicationProtocols.contains("h2") else {
            throw TLSError(.invalidConfiguration,
                           "the server context offers ALPN \(context.configuration.applicationProtocols) without \"h2\": HTTP/2 cannot be negotiated",
                           backend: context.backendID)
        }
    }

    /// Adds the TLSKit handler, then the ALPN switch between the HTTP/1.1 and HTTP/2 pipelines.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(TLSKitServerHandler(context: context))
            try channel.pipeline.syncOperations.addHandler(TLSKitHandshakeFailureLogger(logger: logger))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return channel.configureHTTP2AsyncSecureUpgrade { channel in
            self.http1.setup(channel: channel, logger: logger)
        } http2ConnectionInitializer: { channel in
            self.http2.setup(channel: channel, logger: logger)
        }.map {
            Value(negotiatedHTTPVersion: $0, channel: channel)
        }
    }

    /// Serves the connection with whichever protocol ALPN chose.
    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiatedHTTPVersion.get() {
            case .http1_1(let connection): await http1.handle(value: connection, logger: logger)
            case .http2(let connection): await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("TLS handshake or ALPN failed: \(error)")
        }
    }
}

/// Logs, at debug level, the error that ended a connection's TLS handshake (a client
/// certificate not trusted, none sent…): the handlers after TLS only see the channel
/// close (NIO's ALPN switch fails with "Output closed"), so this is where the reason is.
final class TLSKitHandshakeFailureLogger: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let logger: Logger
    private var handshakeCompleted = false

    init(logger: Logger) { self.logger = logger }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { handshakeCompleted = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeCompleted { logger.debug("TLS handshake failed: \(error)") }
        context.fireErrorCaught(error)
    }
}

extension TLSKit.TLSConfiguration {
    /// This configuration offering `h2` then `http/1.1` by ALPN, as HTTP/2 servers do.
    public func withHTTP2ALPN() -> TLSKit.TLSConfiguration {
        var configuration = self
        configuration.applicationProtocols = ["h2", "http/1.1"]
        return configuration
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 behind TLSKit: HummingbirdTLS's `.tls(.http1(), tlsConfiguration:)`.
    public static func http1TLSKit(context: TLSContext, configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            TLSKitChannel(HTTP1Channel(responder: responder, configuration: configuration), context: context)
        }
    }

    /// HTTP/1.1 and HTTP/2 by ALPN over TLSKit: HummingbirdHTTP2's `.http2Upgrade(tlsConfiguration:)`.
    /// - Throws: `TLSError` when `context` does not offer `h2`.
    public static func http2UpgradeTLSKit(context: TLSContext, configuration: HTTP2ChannelConfiguration = .init()) throws -> HTTPServerBuilder {
        try TLSKitHTTP2UpgradeChannel.checkALPN(context)
        return HTTPServerBuilder { responder in
            try TLSKitHTTP2UpgradeChannel(context: context, configuration: configuration, responder: responder)
        }
    }
}
