// gRPC Swift 2 (grpc-swift-nio-transport) over TLSKitNIO. Copy this file into your project
// (it needs GRPCCore, GRPCNIOTransportHTTP2, NIOPosix and TLSKitNIO), or depend on this target.
//
// Server: `HTTP2ServerTransport.Custom` with ``TLSKitListenerFactory``, which adds the
// TLSKit server handler to each accepted connection and then gRPC's own pipeline, told
// that TLS is there (`tls: .configured(requireALPN: true)`).
//
//   let peers = TLSKitPeers()
//   let transport = HTTP2ServerTransport.Custom(listenerFactory: TLSKitListenerFactory(
//       host: "0.0.0.0", port: 443, context: serverContext, peers: peers))
//
// Client: `HTTP2ClientTransport.Posix` with `transportSecurity: .customSecure` and the
// channel debugging callback that adds the TLSKit client handler first in the pipeline:
//
//   let transport = try HTTP2ClientTransport.Posix.tlsKit(
//       target: .ipv4(address: "10.0.0.1", port: 443), context: clientContext, serverHostname: "api.example.com")
//
// Contexts offer ALPN `grpc-exp` and `h2` (``TLSConfiguration/withGRPCALPN()``).
//
// What the transport does not carry: `ServerContext` has no TLS fields (its
// `transportSpecific` is filled only by grpc's own transports), so ``TLSKitPeers``
// records each connection's TLS details under the `remotePeer` string gRPC gives the
// service (`ipv4:127.0.0.1:51234`), for as long as the connection is open. A connection
// whose handshake fails never reaches gRPC: `TLSKitPeers(onHandshakeFailure:)` is told
// why (the TLSKit handler's `TLSError`: a client certificate not trusted, none sent…).
import GRPCCore
public import GRPCNIOTransportHTTP2
public import NIOCore
import NIOConcurrencyHelpers
public import NIOPosix
import NIOTLS
public import TLSKit
public import TLSKitNIO

extension TLSKit.TLSConfiguration {
    /// This configuration offering `grpc-exp` and `h2` by ALPN, as gRPC clients and servers do.
    public func withGRPCALPN() -> TLSKit.TLSConfiguration {
        var configuration = self
        configuration.applicationProtocols = ["grpc-exp", "h2"]
        return configuration
    }
}

/// The TLS details of open connections, by gRPC's `ServerContext.remotePeer`.
public final class TLSKitPeers: Sendable {
    private let peers = NIOLockedValueBox<[String: TLSKitConnectionInfo]>([:])
    private let onHandshakeFailure: (@Sendable (_ remotePeer: String, _ error: any Error) -> Void)?

    /// An empty registry.
    /// - Parameter onHandshakeFailure: called once for each connection whose TLS handshake
    ///   failed (a client certificate the server does not trust, none when one is required…),
    ///   with the error the TLSKit handler reported (a `TLSError`). gRPC never sees these
    ///   connections: this is the one place a server can log why a client was refused.
    public init(onHandshakeFailure: (@Sendable (_ remotePeer: String, _ error: any Error) -> Void)? = nil) {
        self.onHandshakeFailure = onHandshakeFailure
    }

    /// What the handshake of the connection `remotePeer` established; nil once it closed.
    public func connectionInfo(remotePeer: String) -> TLSKitConnectionInfo? {
        peers.withLockedValue { $0[remotePeer] }
    }

    /// The number of connections currently recorded.
    public var count: Int { peers.withLockedValue { $0.count } }

    func record(_ key: String, _ info: TLSKitConnectionInfo?) {
        peers.withLockedValue { $0[key] = info }
    }

    func handshakeFailed(_ key: String, _ error: any Error) {
        onHandshakeFailure?(key, error)
    }

    /// gRPC's spelling of a remote address (`GRPCNIOTransportCore`'s `remoteAddressInfo`).
    static func key(_ address: NIOCore.SocketAddress?) -> String {
        switch address {
        case .v4(let v4)?: return "ipv4:\(v4.host):\(address!.port!)"
        case .v6(let v6)?: return "ipv6:[\(v6.host)]:\(address!.port!)"
        case .unixDomainSocket?: return "unix:\(address!.pathname ?? "")"
        case nil: return "<unknown>"
        }
    }
}

/// Records the connection's TLS details on `handshakeCompleted` and forgets them on close;
/// reports the first error of a connection whose handshake did not complete.
final class PeerRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let peers: TLSKitPeers
    private var key: String?
    private var reportedFailure = false

    init(peers: TLSKitPeers) { self.peers = peers }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let key = TLSKitPeers.key(context.channel.remoteAddress)
            self.key = key
            peers.record(key, try? context.pipeline.syncOperations.tlsKitConnectionInfo())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if key == nil, !reportedFailure {
            reportedFailure = true
            peers.handshakeFailed(TLSKitPeers.key(context.channel.remoteAddress), error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let key { peers.record(key, nil) }
        context.fireChannelInactive()
    }
}

/// Binds a TCP listener whose connections start with a ``TLSKitServerHandler``; for
/// `HTTP2ServerTransport.Custom(listenerFactory:)`.
public struct TLSKitListenerFactory: HTTP2ServerTransport.ListenerFactory {
    /// Where the connections' event loops come from.
    public let eventLoopGroup: any EventLoopGroup
    /// The address to bind.
    public let host: String
    /// The port (0: the system picks one; read it from the transport's `listeningAddress`).
    public let port: Int
    /// The TLSKit server context (offering `grpc-exp`/`h2`; `clientAuthentication` for mTLS).
    public let context: TLSContext
    /// Where the service finds each connection's TLS details; nil: not recorded.
    public let peers: TLSKitPeers?

    /// A listener factory on `host`:`port`.
    public init(host: String, port: Int, context: TLSContext, peers: TLSKitPeers? = nil,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.context = context
        self.peers = peers
        self.eventLoopGroup = eventLoopGroup
    }

    /// Binds; each accepted connection gets the TLSKit handler, then gRPC's HTTP/2 pipeline.
    public func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { listenerConfigurator.configure(channel: $0) }
            .bind(host: host, port: port) { [context, peers] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TLSKitServerHandler(context: context))
                    if let peers { try sync.addHandler(PeerRecorder(peers: peers)) }
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: true))
                }
            }
    }
}

extension HTTP2ClientTransport.Posix {
    /// A client transport whose connections run over TLSKit: `.customSecure`, with the
    /// TLSKit client handler added first in each connection's pipeline.
    /// - Throws: `TLSError` for a bad `serverHostname`; grpc's errors for a bad target.
    public static func tlsKit(
        target: any ResolvableTarget, context: TLSContext, serverHostname: String?,
        config: Config = .defaults
    ) throws -> HTTP2ClientTransport.Posix {
        _ = try TLSKitClientHandler(context: context, serverHostname: serverHostname)
        var config = config
        let previous = config.channelDebuggingCallbacks.onCreateTCPConnection
        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    TLSKitClientHandler(context: context, serverHostname: serverHostname), position: .first)
            }.flatMap { previous?(channel) ?? channel.eventLoop.makeSucceededVoidFuture() }
        }
        return try HTTP2ClientTransport.Posix(target: target, transportSecurity: .customSecure, config: config)
    }
}
