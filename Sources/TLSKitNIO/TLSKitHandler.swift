#if NIO
public import NIOCore
internal import NIOTLS
internal import TLSCore

/// A SwiftNIO channel handler that runs TLS over one `TLSConnection`: ciphertext
/// `ByteBuffer`s towards the network, plaintext `ByteBuffer`s towards the application.
///
/// Use ``TLSKitClientHandler`` or ``TLSKitServerHandler``; this class holds what they
/// share. It behaves as `NIOSSLHandler` does where pipelines depend on it:
///
/// - the handshake starts in `handlerAdded` on an active channel, else in `channelActive`;
/// - writes and flushes issued before the handshake completes are buffered and sent, in
///   order, once it does;
/// - `TLSUserEvent.handshakeCompleted(negotiatedProtocol:)` is fired when the handshake
///   completes, `TLSUserEvent.shutdownCompleted` after a clean shutdown;
/// - plaintext is delivered in batches, each batch ended by `channelReadComplete`;
/// - `close(mode: .all)` sends close_notify and waits for the peer's, at most
///   ``shutdownTimeout``; during the handshake it closes at once. `close(mode: .output)`
///   sends the buffered writes (flushed or not), then close_notify, then closes output;
///   `close(mode: .input)` fails with `ChannelError.operationUnsupported`;
/// - with `ChannelOptions.allowRemoteHalfClosure`, the peer's close_notify fires
///   `ChannelEvent.inputClosed` once (the transport's own `inputClosed` that follows is
///   swallowed) and the channel stays open for writing; without it, the handler answers
///   and closes;
/// - the peer's EOF without close_notify fires a `TLSError` with code `unexpectedEOF`
///   through `errorCaught`: fatal without half-closure, and with it non-fatal, followed by
///   `ChannelEvent.inputClosed`, the channel still open for writing (NIOSSL's
///   `uncleanShutdown`);
/// - a failed handshake fires the `TLSError` (with its verification category), sends
///   the alert, then closes the channel;
/// - ``stopTLS(promise:)`` ends TLS with close_notify both ways and hands the channel
///   back in plaintext.
///
/// Every promise given to the handler is completed, on every path: by the channel, by
/// the failure that ended the connection, or, if the handler is removed from the
/// pipeline first, with a `TLSError` of code `invalidState`.
///
/// A handler is used on its channel's event loop only, like every NIO handler.
public class TLSKitHandler: ChannelInboundHandler, ChannelOutboundHandler, RemovableChannelHandler {
    /// Ciphertext from the network.
    public typealias InboundIn = ByteBuffer
    /// Plaintext to the application.
    public typealias InboundOut = ByteBuffer
    /// Plaintext from the application.
    public typealias OutboundIn = ByteBuffer
    /// Ciphertext to the network.
    public typealias OutboundOut = ByteBuffer

    enum State {
        /// Added, the channel not active yet.
        case idle
        case handshaking
        case active
        /// The peer's input is over (its close_notify, or with half-closure an EOF without
        /// one); we may still write.
        case inputClosed
        /// Our close_notify is sent and the output closed; we still read.
        case outputClosed
        /// `close(mode: .all)`: our close_notify is sent, waiting for the peer's.
        case closing(Scheduled<Void>)
        /// ``stopTLS(promise:)``: our close_notify is sent, waiting for the peer's.
        case unwrapping(Scheduled<Void>)
        /// TLS is over and the handler left (or is leaving) the pipeline.
        case unwrapped
        case closed
    }

    /// The connection this handler drives.
    let connection: TLSConnection
    var wire: ByteBufferTransport!
    var state = State.idle
    weak var storedContext: ChannelHandlerContext?

    /// Plaintext writes not yet encrypted, oldest first; the first `flushedCount` of them
    /// were flushed.
    var pendingWrites = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
    var flushedCount = 0
    /// `close(mode: .output)` asked for during the handshake: done after the buffered writes.
    var closeOutputAfterHandshake = false
    var closeOutputPromise: EventLoopPromise<Void>?
    var closePromise: EventLoopPromise<Void>?
    /// ``stopTLS(promise:)``'s promise.
    var unwrapPromise: EventLoopPromise<Void>?
    /// The transport's input ended (EOF or half-closure): no close_notify can come any more.
    var transportInputEnded = false
    /// A decode of ciphertext that arrived before a close is scheduled for the next tick.
    var decodeScheduled = false
    /// Plaintext decrypted and not yet handed to the pipeline.
    var plaintext: ByteBuffer?
    /// True when a `channelRead` was fired since the last `channelReadComplete`.
    var deliveredSinceReadComplete = false
    /// The pipeline asked for a read (`read()`) and no plaintext has answered it yet.
    var readPending = false

    /// How long `close(mode: .all)` and ``stopTLS(promise:)`` wait for the peer's
    /// close_notify before closing (or unwrapping) anyway.
    public let shutdownTimeout: TimeAmount

    /// The application's custom verification callback, bridged to the connection.
    let verificationBridge: TLSKitVerificationBridge?

    init(connection: TLSConnection, shutdownTimeout: TimeAmount,
         customVerificationCallback: TLSKitCustomVerificationCallback? = nil) {
        self.connection = connection
        self.shutdownTimeout = shutdownTimeout
        verificationBridge = customVerificationCallback.map(TLSKitVerificationBridge.init)
        if let verificationBridge { connection.customVerification = verificationBridge.verification }
    }

    // MARK: - Lifecycle

    /// Attaches the connection to the channel; starts the handshake if the channel is active.
    public func handlerAdded(context: ChannelHandlerContext) {
        storedContext = context
        verificationBridge?.eventLoop = context.eventLoop
        wire = ByteBufferTransport(allocator: context.channel.allocator)
        do {
            try connection.setTransport(.custom(wire))
        } catch {
            state = .closed
            context.fireErrorCaught(error)
            return
        }
        if context.channel.isActive { startHandshake(context: context) }
    }

    /// Drops buffered bytes and completes every promise the handler still holds: writes
    /// never sent, and a close or ``stopTLS(promise:)`` still waiting, fail with a
    /// `TLSError` of code `invalidState` (the handler left the pipeline mid-flight).
    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelShutdownTimer()
        let error = TLSError(.invalidState, "the TLSKit handler was removed from the pipeline before this completed",
                             backend: backendID)
        failPendingWrites(error)
        closePromise.take()?.fail(error)
        closeOutputPromise.take()?.fail(error)
        unwrapPromise.take()?.fail(error)
        if case .unwrapped = state {} else { state = .closed }
        wire?.discardAll()
        plaintext = nil
        storedContext = nil
    }

    /// Forwards `channelActive`, then starts the handshake.
    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        startHandshake(context: context)
    }

    func startHandshake(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        state = .handshaking
        verifyAddressWithoutName(context: context)
        handshakeStep(context: context)
    }

    /// A client given no host name (none in the handler, none in the configuration) that
    /// must verify one checks the certificate against the peer's IP address, as
    /// `NIOSSLHandler` does: how IP-addressed services are reached. No SNI is sent for it.
    func verifyAddressWithoutName(context: ChannelHandlerContext) {
        guard connection.role == .client, connection.serverName == nil,
              connection.context.configuration.serverName == nil,
              connection.context.configuration.needsServerName,
              let address = context.channel.remoteAddress?.ipAddress else { return }
        connection.serverName = address
    }

    /// The transport went away: an unclean shutdown unless both close_notify were seen.
    public func channelInactive(context: ChannelHandlerContext) {
        endOfInput(context: context)
        let wasClosed: Bool
        switch state {
        case .closed, .unwrapped: wasClosed = true
        case .idle, .handshaking, .active, .inputClosed, .outputClosed, .closing, .unwrapping: wasClosed = false
        }
        cancelShutdownTimer()
        state = .closed
        if !wasClosed {
            let error = ChannelError.ioOnClosedChannel
            closePromise.take()?.fail(error)
            closeOutputPromise.take()?.fail(error)
            unwrapPromise.take()?.fail(error)
        } else {
            closePromise.take()?.succeed()
            closeOutputPromise.take()?.succeed()
            unwrapPromise.take()?.fail(ChannelError.ioOnClosedChannel)
        }
        failPendingWrites(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// `ChannelEvent.inputClosed`, the transport's half-closure. After the peer's
    /// close_notify it is swallowed: the handler already fired one. Without one, it is an
    /// unclean shutdown: with `allowRemoteHalfClosure`, the `unexpectedEOF` error is
    /// fired as a non-fatal error, then `inputClosed`, and the channel stays writable;
    /// without it, the error ends the connection.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .inputClosed:
            transportInputEnded = true
            return
        case .idle, .closed, .unwrapped:
            context.fireUserInboundEventTriggered(event)
        case .handshaking:
            endOfInput(context: context)
        case .active, .outputClosed, .closing, .unwrapping:
            guard allowsRemoteHalfClosure(context) else {
                endOfInput(context: context)
                if case .closed = state { return }
                context.fireUserInboundEventTriggered(event)
                return
            }
            transportInputEnded = true
            // Every whole record that came before the EOF was decoded as it arrived; a
            // close_notify among them would have moved the state on.
            let error = TLSError(.unexpectedEOF,
                                 "the peer closed its side of the transport without close_notify (unclean shutdown)",
                                 backend: backendID)
            switch state {
            case .active:
                state = .inputClosed
                context.fireErrorCaught(error)
                context.fireUserInboundEventTriggered(event)
            case .outputClosed:
                // Both directions are over: nothing is left to do but close.
                context.fireErrorCaught(error)
                context.fireUserInboundEventTriggered(event)
                closeChannel(context: context)
            case .unwrapping:
                // The close_notify stopTLS waits for cannot come now.
                shutdownStep(context: context)
            default:
                // `close(mode: .all)` waited for a close_notify that cannot come now.
                fail(context: context, error)
            }
        }
    }

    /// Feeds end-of-stream to the connection where it still expects bytes, which turns
    /// it into the connection's own `unexpectedEOF` error.
    func endOfInput(context: ChannelHandlerContext) {
        transportInputEnded = true
        guard let wire, !wire.inboundClosed else { return }
        wire.inboundClosed = true
        switch state {
        case .handshaking: handshakeStep(context: context)
        case .active, .outputClosed, .closing: decode(context: context)
        case .unwrapping: shutdownStep(context: context)
        case .idle, .inputClosed, .closed, .unwrapped: break
        }
    }
}

@available(*, unavailable)
extension TLSKitHandler: Sendable {}

extension Optional {
    /// The value, leaving nil behind.
    mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}
#endif
