#if NIO
public import NIOCore
internal import NIOTLS
public import TLSKit
@_spi(TLSBackendImplementation) internal import TLSCore  // TLSHostName: the one server-name rule

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
///   ``shutdownTimeout``; `close(mode: .output)` sends close_notify and closes output;
///   `close(mode: .input)` fails with `ChannelError.operationUnsupported`;
/// - with `ChannelOptions.allowRemoteHalfClosure`, the peer's close_notify fires
///   `ChannelEvent.inputClosed`; without it, the handler answers and closes;
/// - the peer's EOF without close_notify fires a `TLSError` with code
///   `unexpectedEOF` through `errorCaught`;
/// - a failed handshake fires the `TLSError` (with its verification category), sends
///   the alert, then closes the channel.
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

    private enum State {
        /// Added, the channel not active yet.
        case idle
        case handshaking
        case active
        /// The peer's close_notify arrived with half-closure allowed; we may still write.
        case inputClosed
        /// Our close_notify is sent and the output closed; we still read.
        case outputClosed
        /// `close(mode: .all)`: our close_notify is sent, waiting for the peer's.
        case closing(Scheduled<Void>?)
        case closed
    }

    /// The connection this handler drives.
    let connection: TLSConnection
    private var wire: ByteBufferTransport!
    private var state = State.idle
    private weak var storedContext: ChannelHandlerContext?

    /// Plaintext writes not yet encrypted, oldest first; the first `flushedCount` of them
    /// were flushed.
    private var pendingWrites = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
    private var flushedCount = 0
    /// `close(mode: .output)` asked for during the handshake: done after the buffered writes.
    private var closeOutputAfterHandshake = false
    /// `close(mode: .all)` asked for during the handshake: the handshake may finish (at
    /// most ``shutdownTimeout``), the buffered writes go out, then close_notify.
    private var closeAfterHandshake: Scheduled<Void>?
    private var closeOutputPromise: EventLoopPromise<Void>?
    private var closePromise: EventLoopPromise<Void>?
    /// Plaintext decrypted and not yet handed to the pipeline.
    private var plaintext: ByteBuffer?
    /// True when a `channelRead` was fired since the last `channelReadComplete`.
    private var deliveredSinceReadComplete = false
    /// The pipeline asked for a read (`read()`) and no plaintext has answered it yet.
    private var readPending = false

    /// How long `close(mode: .all)` waits for the peer's close_notify before closing the
    /// channel anyway.
    public let shutdownTimeout: TimeAmount

    init(connection: TLSConnection, shutdownTimeout: TimeAmount) {
        self.connection = connection
        self.shutdownTimeout = shutdownTimeout
    }

    // MARK: - What other code reads

    /// The negotiated protocol version; nil before the handshake completes.
    public var negotiatedVersion: TLSVersion? { connection.negotiatedVersion }
    /// The negotiated cipher suite by its IANA name; nil before the handshake completes.
    public var cipherSuite: String? { connection.cipherSuite }
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String? { connection.negotiatedApplicationProtocol }
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]] { connection.peerCertificateChain }
    /// The peer's leaf certificate, parsed; nil before the handshake or without one.
    public var peerCertificate: TLSCertificateInfo? { connection.peerCertificateInfo }
    /// How the peer was verified; nil before the handshake completes.
    public var peerVerification: TLSPeerVerification? { connection.peerVerification }
    /// Server role: the host name the client asked for with SNI.
    public var requestedServerName: String? { connection.requestedServerName }

    /// Decrypted plaintext not yet handed to the pipeline (0 between reads).
    var bufferedPlaintextBytes: Int { plaintext?.readableBytes ?? 0 }
    /// Ciphertext read from the channel and not yet taken by the library.
    var bufferedCiphertextBytes: Int { wire?.pendingInbound ?? 0 }

    /// Everything above in one value, safe to send to another thread.
    public var connectionInfo: TLSKitConnectionInfo? {
        guard connection.isHandshakeComplete else { return nil }
        return TLSKitConnectionInfo(
            negotiatedVersion: connection.negotiatedVersion,
            cipherSuite: connection.cipherSuite,
            negotiatedApplicationProtocol: connection.negotiatedApplicationProtocol,
            peerCertificateChain: connection.peerCertificateChain,
            peerCertificate: connection.peerCertificateInfo,
            peerVerification: connection.peerVerification,
            requestedServerName: connection.requestedServerName)
    }

    // MARK: - Lifecycle

    /// Attaches the connection to the channel; starts the handshake if the channel is active.
    public func handlerAdded(context: ChannelHandlerContext) {
        storedContext = context
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

    /// Drops buffered bytes and fails writes that were never sent.
    public func handlerRemoved(context: ChannelHandlerContext) {
        failPendingWrites(ChannelError.ioOnClosedChannel)
        wire?.discardAll()
        plaintext = nil
        storedContext = nil
    }

    /// Forwards `channelActive`, then starts the handshake.
    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        startHandshake(context: context)
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        state = .handshaking
        handshakeStep(context: context)
    }

    /// The transport went away: an unclean shutdown unless both close_notify were seen.
    public func channelInactive(context: ChannelHandlerContext) {
        endOfInput(context: context)
        let wasClosed: Bool
        if case .closed = state { wasClosed = true } else { wasClosed = false }
        cancelShutdownTimer()
        state = .closed
        if !wasClosed {
            let error = ChannelError.ioOnClosedChannel
            closePromise.take()?.fail(error)
            closeOutputPromise.take()?.fail(error)
        } else {
            closePromise.take()?.succeed()
            closeOutputPromise.take()?.succeed()
        }
        failPendingWrites(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// `ChannelEvent.inputClosed` (the transport's half-closure) is end-of-stream for
    /// the TLS connection: without a close_notify first, that is an unclean shutdown.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            endOfInput(context: context)
            if case .closed = state { return }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Feeds end-of-stream to the connection where it still expects bytes, which turns
    /// it into the connection's own `unexpectedEOF` error.
    private func endOfInput(context: ChannelHandlerContext) {
        guard let wire, !wire.inboundClosed else { return }
        wire.inboundClosed = true
        switch state {
        case .handshaking: handshakeStep(context: context)
        case .active, .outputClosed, .closing: decode(context: context)
        case .idle, .inputClosed, .closed: break
        }
    }

    // MARK: - Inbound

    /// Ciphertext from the network: advances the handshake or decrypts.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .closed, .inputClosed: return
        case .idle, .handshaking, .active, .outputClosed, .closing: break
        }
        wire.receive(buffer)
        switch state {
        case .handshaking: handshakeStep(context: context)
        case .active, .outputClosed, .closing:
            // What this read decrypted goes up now, not at `channelReadComplete`: the
            // channel may read many times in one batch, and the handler keeps no
            // plaintext between reads (at most a partial record of ciphertext).
            decode(context: context)
            deliverPlaintext(context: context)
        case .idle, .inputClosed, .closed: break
        }
    }

    /// Ends the batch: `channelReadComplete` if plaintext was delivered. Otherwise the
    /// reads yielded no whole record: another `read()` if the pipeline's read is still
    /// unanswered, or if the handler reads for itself (handshake, waiting for the peer's
    /// close_notify) with `autoRead` off; no read that nobody asked for.
    public func channelReadComplete(context: ChannelHandlerContext) {
        deliverPlaintext(context: context)
        if deliveredSinceReadComplete {
            deliveredSinceReadComplete = false
            context.fireChannelReadComplete()
        } else if isActiveOrHandshaking, readPending || (readsForItself && !autoRead(context)) {
            context.read()
        }
    }

    /// The handshake and the wait for close_notify are the handler's own business.
    private var readsForItself: Bool {
        switch state {
        case .handshaking, .closing: return true
        case .idle, .active, .inputClosed, .outputClosed, .closed: return false
        }
    }

    private var isActiveOrHandshaking: Bool {
        switch state {
        case .handshaking, .active, .outputClosed, .closing: return true
        case .idle, .inputClosed, .closed: return false
        }
    }

    private func autoRead(_ context: ChannelHandlerContext) -> Bool {
        (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
    }

    private func allowsRemoteHalfClosure(_ context: ChannelHandlerContext) -> Bool {
        (try? context.channel.syncOptions?.getOption(ChannelOptions.allowRemoteHalfClosure)) ?? false
    }

    private func handshakeStep(context: ChannelHandlerContext) {
        let result = connection.doHandshake()
        if result == 1 {
            state = .active
            writeOutbound(context: context, promise: nil)
            context.fireUserInboundEventTriggered(
                TLSUserEvent.handshakeCompleted(negotiatedProtocol: connection.negotiatedApplicationProtocol))
            guard case .active = state else { return }
            // Records that followed the peer's Finished in the same read.
            decode(context: context)
            deliverPlaintext(context: context)
            encryptFlushedWrites(context: context)
            if let timer = closeAfterHandshake.take(), case .active = state {
                timer.cancel()
                closeAll(context: context, promise: nil)
            } else if closeOutputAfterHandshake, case .active = state {
                closeOutputAfterHandshake = false
                closeOutput(context: context, promise: closeOutputPromise.take())
            }
            return
        }
        switch connection.error(for: result) {
        case .wantRead, .wantWrite, .none:
            writeOutbound(context: context, promise: nil)
            // The handshake is the handler's own business: it reads for it even when
            // the application has turned autoRead off.
            if !autoRead(context) { context.read() }
        case .zeroReturn:
            fail(context: context, TLSError(.closedByPeer, "the peer closed the session (close_notify) during the handshake",
                                            backend: connection.context.backendID))
        case .ssl, .syscall:
            fail(context: context, connectionError(result))
        }
    }

    private func connectionError(_ result: Int32) -> TLSError {
        connection.lastError ?? TLSError(.internalError, "TLS call failed with result \(result)",
                                         backend: connection.context.backendID)
    }

    /// A fatal failure: sends what the library queued (the alert), fires the error, closes.
    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        deliverPlaintext(context: context)
        writeOutbound(context: context, promise: nil)
        cancelShutdownTimer()
        state = .closed
        failPendingWrites(error)
        closeOutputPromise.take()?.fail(error)
        context.fireErrorCaught(error)
        context.close(promise: closePromise.take())
    }

    /// Decrypts every complete record the transport holds, into one buffer sized for
    /// them: the ciphertext queued plus one record the library may hold (a record whose
    /// start it had already taken). The buffer never grows (growing would copy); if it
    /// fills anyway, it is delivered and another one started.
    private func decode(context: ChannelHandlerContext) {
        while true {
            let wanted = wire.pendingInbound + 16_384
            if plaintext != nil, plaintext!.readableBytes > 0, plaintext!.writableBytes == 0 {
                deliverPlaintext(context: context)
                if case .closed = state { return }  // the application closed on that read
            }
            if plaintext == nil || (plaintext!.readableBytes == 0 && plaintext!.capacity < wanted) {
                plaintext = context.channel.allocator.buffer(capacity: wanted)
            } else if plaintext!.readableBytes == 0 && plaintext!.writerIndex > 0 {
                // Delivered as a slice: the same storage again if the pipeline let go of
                // it (no allocation), else a new one of the same capacity (no copy).
                plaintext!.clear()
            }
            var result: Int32 = 0
            plaintext!.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { buffer in
                result = connection.read(into: buffer)
                return result > 0 ? Int(result) : 0
            }
            if result > 0 { continue }
            switch connection.error(for: result) {
            case .wantRead, .wantWrite, .none:
                // KeyUpdate answers and TLS 1.3 tickets may have queued records.
                writeOutbound(context: context, promise: nil)
                return
            case .zeroReturn:
                peerClosed(context: context)
                return
            case .ssl, .syscall:
                fail(context: context, connectionError(result))
                return
            }
        }
    }

    /// Fires the decrypted plaintext, if any, as one `channelRead`: a slice of the
    /// handler's buffer, whose storage `decode` writes again once the pipeline has let
    /// go of the slice.
    private func deliverPlaintext(context: ChannelHandlerContext) {
        guard plaintext != nil, plaintext!.readableBytes > 0 else { return }
        let buffer = plaintext!.readSlice(length: plaintext!.readableBytes)!
        deliveredSinceReadComplete = true
        readPending = false
        context.fireChannelRead(wrapInboundOut(buffer))
    }

    /// The peer's close_notify arrived.
    private func peerClosed(context: ChannelHandlerContext) {
        deliverPlaintext(context: context)
        if deliveredSinceReadComplete {
            deliveredSinceReadComplete = false
            context.fireChannelReadComplete()
        }
        switch state {
        case .active where allowsRemoteHalfClosure(context):
            state = .inputClosed
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .active, .outputClosed, .closing:
            // Answer with ours (once) and close: the session is over.
            finishShutdown(context: context)
        case .idle, .handshaking, .inputClosed, .closed:
            break
        }
    }

    /// Sends our close_notify if not yet sent; with both seen, fires
    /// `TLSUserEvent.shutdownCompleted` and closes the channel.
    private func finishShutdown(context: ChannelHandlerContext) {
        let result = connection.shutdown()
        writeOutbound(context: context, promise: nil)
        cancelShutdownTimer()
        guard result == 1 else {
            fail(context: context, connectionError(result))
            return
        }
        state = .closed
        failPendingWrites(ChannelError.outputClosed)
        closeOutputPromise.take()?.succeed()
        context.fireUserInboundEventTriggered(TLSUserEvent.shutdownCompleted)
        context.close(promise: closePromise.take())
    }

    // MARK: - Outbound

    /// Buffers plaintext; it is encrypted at the next flush once the handshake completed.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .closed, .outputClosed, .closing:
            promise?.fail(ChannelError.outputClosed)
            return
        case .idle, .handshaking, .active, .inputClosed:
            pendingWrites.append((unwrapOutboundIn(data), promise))
        }
    }

    /// Marks the buffered writes flushed and, after the handshake, encrypts and sends them.
    public func flush(context: ChannelHandlerContext) {
        flushedCount = pendingWrites.count
        switch state {
        case .active, .inputClosed: encryptFlushedWrites(context: context)
        case .idle, .handshaking, .outputClosed, .closing, .closed: break
        }
    }

    /// Encrypts the flushed writes into one ciphertext buffer and writes it, its promise
    /// completing every write it carries.
    private func encryptFlushedWrites(context: ChannelHandlerContext) {
        guard flushedCount > 0 else { return }
        // The connection sends data: its ciphertext buffer is worth keeping between flushes.
        wire.keepsOutboundStorage = true
        var promises: [EventLoopPromise<Void>] = []
        var single: EventLoopPromise<Void>?
        while flushedCount > 0 {
            let (buffer, promise) = pendingWrites.removeFirst()
            flushedCount -= 1
            let result = buffer.withUnsafeReadableBytes { connection.write($0) }
            if result < 0 || (result == 0 && buffer.readableBytes > 0) {
                let error = connectionError(result)
                promise?.fail(error)
                fail(context: context, error)
                return
            }
            if let promise {
                if single == nil && promises.isEmpty { single = promise } else {
                    if let first = single { promises.append(first); single = nil }
                    promises.append(promise)
                }
            }
        }
        var combined = single
        if !promises.isEmpty {
            let promise = context.eventLoop.makePromise(of: Void.self)
            let all = promises
            promise.futureResult.whenComplete { result in
                for each in all { each.completeWith(result) }
            }
            combined = promise
        }
        writeOutbound(context: context, promise: combined)
    }

    /// Writes and flushes the ciphertext the connection produced. A promise with no bytes
    /// to carry still goes through the channel, after what was written before it.
    private func writeOutbound(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if let buffer = wire.takeOutbound() {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        } else if let promise {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        }
    }

    private func failPendingWrites(_ error: any Error) {
        flushedCount = 0
        while let (_, promise) = pendingWrites.popFirst() {
            promise?.fail(error)
        }
    }

    /// Reads are passed on: the channel reads only when the pipeline asks.
    public func read(context: ChannelHandlerContext) {
        readPending = true
        context.read()
    }

    // MARK: - Closing

    /// `.all`: close_notify, then wait (at most ``shutdownTimeout``) for the peer's.
    /// `.output`: close_notify, then the output is closed. `.input`: unsupported.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .input: promise?.fail(ChannelError.operationUnsupported)
        case .output: closeOutput(context: context, promise: promise)
        case .all: closeAll(context: context, promise: promise)
        }
    }

    private func closeOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch state {
        case .idle, .outputClosed, .closed:
            context.close(mode: .output, promise: promise)
        case .closing:
            chain(promise, to: &closePromise, context: context)
        case .handshaking:
            closeOutputAfterHandshake = true
            chain(promise, to: &closeOutputPromise, context: context)
        case .inputClosed:
            closeAll(context: context, promise: promise)
        case .active:
            encryptFlushedWrites(context: context)
            guard case .active = state else { promise?.fail(ChannelError.alreadyClosed); return }
            failPendingWrites(ChannelError.outputClosed)
            let result = connection.shutdown()
            writeOutbound(context: context, promise: nil)
            guard result >= 0 else {
                promise?.fail(connectionError(result))
                fail(context: context, connectionError(result))
                return
            }
            state = .outputClosed
            let pending = closeOutputPromise.take()
            pending.map { promise?.futureResult.cascade(to: $0) }
            context.close(mode: .output, promise: promise ?? pending)
        }
    }

    private func closeAll(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch state {
        case .handshaking:
            chain(promise, to: &closePromise, context: context)
            if closeAfterHandshake == nil {
                closeAfterHandshake = context.eventLoop.assumeIsolated().scheduleTask(in: shutdownTimeout) { [weak self] in
                    guard let self else { return }
                    self.shutdownTimedOut()
                }
            }
        case .idle, .closed:
            state = .closed
            failPendingWrites(ChannelError.ioOnClosedChannel)
            context.close(promise: promise)
        case .closing:
            chain(promise, to: &closePromise, context: context)
        case .active, .inputClosed, .outputClosed:
            chain(promise, to: &closePromise, context: context)
            if case .outputClosed = state {} else {
                encryptFlushedWrites(context: context)
            }
            failPendingWrites(ChannelError.ioOnClosedChannel)
            let result = connection.shutdown()
            switch result {
            case 1:
                finishShutdown(context: context)
            case 0:
                writeOutbound(context: context, promise: nil)
                let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: shutdownTimeout) { [weak self] in
                    guard let self else { return }
                    self.shutdownTimedOut()
                }
                state = .closing(timeout)
                // The peer's close_notify may already be buffered; otherwise read for it.
                if wire.pendingInbound > 0 { decode(context: context) }
                if case .closing = state, !autoRead(context) { context.read() }
            default:
                fail(context: context, connectionError(result))
            }
        }
    }

    private func shutdownTimedOut() {
        guard let context = storedContext else { return }
        switch state {
        case .closing, .handshaking: break
        case .idle, .active, .inputClosed, .outputClosed, .closed: return
        }
        closeAfterHandshake = nil
        state = .closed
        failPendingWrites(ChannelError.ioOnClosedChannel)
        context.close(promise: closePromise.take())
    }

    private func cancelShutdownTimer() {
        if case .closing(let timer) = state { timer?.cancel() }
        closeAfterHandshake.take()?.cancel()
    }

    /// Completes `promise` with `stored`, storing it if there is none yet.
    private func chain(_ promise: EventLoopPromise<Void>?, to stored: inout EventLoopPromise<Void>?,
                       context: ChannelHandlerContext) {
        guard let promise else { return }
        if let stored { stored.futureResult.cascade(to: promise) } else { stored = promise }
    }
}

@available(*, unavailable)
extension TLSKitHandler: Sendable {}

extension Optional {
    /// The value, leaving nil behind.
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}

/// What a completed handshake established, read from a handler: safe to send anywhere.
public struct TLSKitConnectionInfo: Sendable {
    /// The negotiated protocol version.
    public var negotiatedVersion: TLSVersion?
    /// The negotiated cipher suite by its IANA name.
    public var cipherSuite: String?
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String?
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]]
    /// The peer's leaf certificate, parsed.
    public var peerCertificate: TLSCertificateInfo?
    /// How the peer was verified.
    public var peerVerification: TLSPeerVerification?
    /// Server role: the host name the client asked for with SNI.
    public var requestedServerName: String?
}

/// The client end: `NIOSSLClientHandler`'s counterpart.
public final class TLSKitClientHandler: TLSKitHandler {
    /// Creates a client handler.
    /// - Parameters:
    ///   - context: the TLSKit context (either backend) the connection is made from.
    ///   - serverHostname: the name for SNI and host-name verification; nil uses the
    ///     configuration's `serverName`.
    ///   - shutdownTimeout: how long `close(mode: .all)` waits for the peer's close_notify.
    /// - Throws: `TLSError` with code `invalidConfiguration` for a name that is neither a
    ///   DNS name nor an IP address.
    public init(context: TLSContext, serverHostname: String?, shutdownTimeout: TimeAmount = .seconds(5)) throws {
        let connection = context.makeConnection()
        if let serverHostname {
            // The same rule the connection applies when the handshake starts, checked
            // here so that a bad name fails at construction, as NIOSSLClientHandler's does.
            guard TLSHostName.isValidServerName(serverHostname) else {
                throw TLSError(.invalidConfiguration,
                               "serverHostname \"\(serverHostname)\" is neither a DNS name nor an IP address",
                               backend: context.backendID)
            }
            connection.serverName = serverHostname
        }
        try connection.setConnectState()
        super.init(connection: connection, shutdownTimeout: shutdownTimeout)
    }
}

/// The server end: `NIOSSLServerHandler`'s counterpart.
public final class TLSKitServerHandler: TLSKitHandler {
    /// Creates a server handler.
    /// - Parameters:
    ///   - context: the TLSKit context (either backend), with the server's identity.
    ///   - shutdownTimeout: how long `close(mode: .all)` waits for the peer's close_notify.
    public init(context: TLSContext, shutdownTimeout: TimeAmount = .seconds(5)) {
        let connection = context.makeConnection()
        try! connection.setAcceptState()  // a fresh connection has no role: cannot throw
        super.init(connection: connection, shutdownTimeout: shutdownTimeout)
    }
}
#endif
