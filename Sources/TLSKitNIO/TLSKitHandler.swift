#if NIO
public import NIOCore
internal import NIOTLS
public import TLSCore

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

    private enum State {
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
    private var wire: ByteBufferTransport!
    private var state = State.idle
    private weak var storedContext: ChannelHandlerContext?

    /// Plaintext writes not yet encrypted, oldest first; the first `flushedCount` of them
    /// were flushed.
    private var pendingWrites = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
    private var flushedCount = 0
    /// `close(mode: .output)` asked for during the handshake: done after the buffered writes.
    private var closeOutputAfterHandshake = false
    private var closeOutputPromise: EventLoopPromise<Void>?
    private var closePromise: EventLoopPromise<Void>?
    /// ``stopTLS(promise:)``'s promise.
    private var unwrapPromise: EventLoopPromise<Void>?
    /// The transport's input ended (EOF or half-closure): no close_notify can come any more.
    private var transportInputEnded = false
    /// A decode of ciphertext that arrived before a close is scheduled for the next tick.
    private var decodeScheduled = false
    /// Plaintext decrypted and not yet handed to the pipeline.
    private var plaintext: ByteBuffer?
    /// True when a `channelRead` was fired since the last `channelReadComplete`.
    private var deliveredSinceReadComplete = false
    /// The pipeline asked for a read (`read()`) and no plaintext has answered it yet.
    private var readPending = false

    /// How long `close(mode: .all)` and ``stopTLS(promise:)`` wait for the peer's
    /// close_notify before closing (or unwrapping) anyway.
    public let shutdownTimeout: TimeAmount

    /// The application's custom verification callback, bridged to the connection.
    private let verificationBridge: TLSKitVerificationBridge?

    init(connection: TLSConnection, shutdownTimeout: TimeAmount,
         customVerificationCallback: TLSKitCustomVerificationCallback? = nil) {
        self.connection = connection
        self.shutdownTimeout = shutdownTimeout
        verificationBridge = customVerificationCallback.map(TLSKitVerificationBridge.init)
        if let verificationBridge { connection.customVerification = verificationBridge.verification }
    }

    // MARK: - What other code reads

    /// The negotiated protocol version; nil before the handshake completes.
    public var negotiatedVersion: TLSVersion? { connection.negotiatedVersion }
    /// The negotiated protocol version, under `NIOSSLHandler`'s name; nil before the
    /// handshake completes.
    public var tlsVersion: TLSVersion? { connection.negotiatedVersion }
    /// The negotiated cipher suite by its IANA name; nil before the handshake completes.
    public var cipherSuite: String? { connection.cipherSuite }
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String? { connection.negotiatedApplicationProtocol }
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]] { connection.peerCertificateChain }
    /// The peer's leaf certificate, parsed; nil before the handshake or without one.
    public var peerCertificate: TLSCertificateInfo? { connection.peerCertificateInfo }
    /// The chain a custom verification callback validated, as it answered it
    /// (`TLSVerificationVerdict.accept(validatedChain:)`): NIOSSL's
    /// `peerValidatedCertificateChain`; nil without such a callback or such an answer.
    public var peerValidatedCertificateChain: [[UInt8]]? { connection.validatedCertificateChain }
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

    private var backendID: TLSBackendID { connection.context.backendID }

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

    private func startHandshake(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        state = .handshaking
        verifyAddressWithoutName(context: context)
        handshakeStep(context: context)
    }

    /// A client given no host name (none in the handler, none in the configuration) that
    /// must verify one checks the certificate against the peer's IP address, as
    /// `NIOSSLHandler` does: how IP-addressed services are reached. No SNI is sent for it.
    private func verifyAddressWithoutName(context: ChannelHandlerContext) {
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
    private func endOfInput(context: ChannelHandlerContext) {
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

    // MARK: - Inbound

    /// Ciphertext from the network: advances the handshake or decrypts.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .closed, .unwrapped:
            return
        case .inputClosed:
            // After the peer's close_notify: "any data received after a closure alert
            // has been received MUST be ignored" (RFC 8446 §6.1). (NIOSSL fails instead.)
            return
        case .idle, .handshaking, .active, .outputClosed, .closing, .unwrapping: break
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
        case .unwrapping: shutdownStep(context: context)
        case .idle, .inputClosed, .closed, .unwrapped: break
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
        case .handshaking, .closing, .unwrapping: return true
        case .idle, .active, .inputClosed, .outputClosed, .unwrapped, .closed: return false
        }
    }

    private var isActiveOrHandshaking: Bool {
        switch state {
        case .handshaking, .active, .outputClosed, .closing, .unwrapping: return true
        case .idle, .inputClosed, .unwrapped, .closed: return false
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
            // The application may have written, closed or unwrapped in that event: records
            // that followed the peer's Finished in the same read are decoded all the same
            // wherever the state still reads.
            switch state {
            case .active, .outputClosed, .closing:
                decode(context: context)
                deliverPlaintext(context: context)
            case .idle, .handshaking, .inputClosed, .unwrapping, .unwrapped, .closed:
                break
            }
            guard case .active = state else { return }
            encryptFlushedWrites(context: context)
            if closeOutputAfterHandshake, case .active = state {
                closeOutputAfterHandshake = false
                closeOutput(context: context, promise: nil)
            }
            return
        }
        switch connection.error(for: result) {
        case .wantRead, .wantWrite, .none:
            writeOutbound(context: context, promise: nil)
            // The handshake is the handler's own business: it reads for it even when
            // the application has turned autoRead off.
            if !autoRead(context) { context.read() }
        case .wantRetryVerify:
            writeOutbound(context: context, promise: nil)
            resumeAfterVerification(context: context)
        case .zeroReturn:
            fail(context: context, TLSError(.closedByPeer, "the peer closed the session (close_notify) during the handshake",
                                            backend: backendID))
        case .ssl, .syscall:
            fail(context: context, connectionError(result))
        }
    }

    /// The custom verification answers later (a ``TLSKitCustomVerificationCallback``
    /// promise, or a `TLSConfiguration.customVerification` completion from any thread):
    /// the handshake goes on, on the event loop, once it has. A handler that was removed,
    /// or whose channel closed, meanwhile ignores the answer; it is held weakly.
    private func resumeAfterVerification(context: ChannelHandlerContext) {
        let weakHandler = NIOLoopBound(TLSKitWeakHandler(self), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        connection.verificationWakeUp = {
            eventLoop.execute {
                guard let handler = weakHandler.value.handler, case .handshaking = handler.state,
                      let context = handler.storedContext else { return }
                handler.handshakeStep(context: context)
            }
        }
    }

    private func connectionError(_ result: Int32) -> TLSError {
        connection.lastError ?? TLSError(.internalError, "TLS call failed with result \(result)", backend: backendID)
    }

    /// A fatal failure: sends what the library queued (the alert), fires the error, closes.
    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        deliverPlaintext(context: context)
        writeOutbound(context: context, promise: nil)
        cancelShutdownTimer()
        state = .closed
        failPendingWrites(error)
        closeOutputPromise.take()?.fail(error)
        unwrapPromise.take()?.fail(error)
        context.fireErrorCaught(error)
        context.close(promise: closePromise.take())
    }

    /// Closes the channel with no more TLS: what is left of the session is over.
    private func closeChannel(context: ChannelHandlerContext) {
        cancelShutdownTimer()
        state = .closed
        failPendingWrites(ChannelError.ioOnClosedChannel)
        closeOutputPromise.take()?.succeed()
        unwrapPromise.take()?.fail(ChannelError.alreadyClosed)
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
            case .wantRead, .wantWrite, .none, .wantRetryVerify:  // (a read never waits for verification)
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
        case .active, .outputClosed:
            // Answer with ours (once) and close: the session is over.
            state = .closing(scheduleShutdownTimeout(context: context))
            shutdownStep(context: context)
        case .closing, .unwrapping:
            shutdownStep(context: context)
        case .idle, .handshaking, .inputClosed, .unwrapped, .closed:
            break
        }
    }

    /// Sends our close_notify if not yet sent. With both seen, fires
    /// `TLSUserEvent.shutdownCompleted` and ends what asked for the shutdown: `.closing`
    /// closes the channel, `.unwrapping` hands it back in plaintext. Still waiting for the
    /// peer's (0, or -1 with want-read: `SSL_shutdown(3)`'s "call again"), it reads for it.
    private func shutdownStep(context: ChannelHandlerContext) {
        let result = connection.shutdown()
        writeOutbound(context: context, promise: nil)
        switch state {
        case .closing, .unwrapping: break
        case .idle, .handshaking, .active, .inputClosed, .outputClosed, .unwrapped, .closed: return  // moved on meanwhile
        }
        if result == 1 {
            shutdownCompleted(context: context)
            return
        }
        switch connection.error(for: result) {
        case .wantRead, .wantWrite, .none, .wantRetryVerify:  // (shutdown never waits for verification)
            guard !transportInputEnded else {
                // The peer's input is over: its close_notify cannot come any more.
                if case .unwrapping = state {
                    unwrap(context: context, error: TLSError(.unexpectedEOF,
                        "the peer's input ended before its close_notify: TLS was not stopped cleanly", backend: backendID))
                } else {
                    closeChannel(context: context)
                }
                return
            }
            // Ciphertext already here may hold the peer's close_notify: decoded on the next
            // tick, not inside the caller's close() or stopTLS().
            if wire.pendingInbound > 0 { scheduleDecode(context: context) }
            if !autoRead(context) { context.read() }
        case .zeroReturn:
            shutdownCompleted(context: context)
        case .ssl, .syscall:
            fail(context: context, connectionError(result))
        }
    }

    /// Both close_notify seen: `TLSUserEvent.shutdownCompleted`, then what asked for the
    /// shutdown is done (`.unwrapping`: plaintext; `.closing`: the channel closes).
    private func shutdownCompleted(context: ChannelHandlerContext) {
        cancelShutdownTimer()
        context.fireUserInboundEventTriggered(TLSUserEvent.shutdownCompleted)
        if case .unwrapping = state { unwrap(context: context, error: nil) } else { closeChannel(context: context) }
    }

    private func scheduleDecode(context: ChannelHandlerContext) {
        guard !decodeScheduled else { return }
        decodeScheduled = true
        context.eventLoop.assumeIsolated().execute { [weak self] in
            guard let self, let context = self.storedContext else { return }
            self.decodeScheduled = false
            switch self.state {
            case .closing:
                self.decode(context: context)
                self.channelReadComplete(context: context)
            case .unwrapping:
                self.shutdownStep(context: context)
            case .idle, .handshaking, .active, .inputClosed, .outputClosed, .unwrapped, .closed:
                break
            }
        }
    }

    private func scheduleShutdownTimeout(context: ChannelHandlerContext) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: shutdownTimeout) { [weak self] in
            self?.shutdownTimedOut()
        }
    }

    // MARK: - Outbound

    /// Buffers plaintext; it is encrypted at the next flush once the handshake completed.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .closed, .closing:
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .outputClosed, .unwrapping, .unwrapped:
            promise?.fail(ChannelError.outputClosed)
        case .handshaking where closeOutputAfterHandshake:
            promise?.fail(ChannelError.outputClosed)
        case .idle, .handshaking, .active, .inputClosed:
            pendingWrites.append((unwrapOutboundIn(data), promise))
        }
    }

    /// Marks the buffered writes flushed and, after the handshake, encrypts and sends them.
    public func flush(context: ChannelHandlerContext) {
        flushedCount = pendingWrites.count
        switch state {
        case .active, .inputClosed: encryptFlushedWrites(context: context)
        case .idle, .handshaking, .outputClosed, .closing, .unwrapping, .unwrapped, .closed: break
        }
    }

    /// Encrypts the flushed writes into one ciphertext buffer and writes it, its promise
    /// completing every write it carries. A write the connection refuses fails the
    /// connection, and with it every write of this flush, those already encrypted too:
    /// their bytes would have followed a failure.
    private func encryptFlushedWrites(context: ChannelHandlerContext) {
        guard flushedCount > 0 else { return }
        // The connection sends data: its ciphertext buffer is worth keeping between flushes.
        wire.keepsOutboundStorage = true
        var promises: [EventLoopPromise<Void>] = []
        // The promises of the writes joined into the current one.
        var run: [EventLoopPromise<Void>] = []
        while flushedCount > 0 {
            var (buffer, promise) = pendingWrites.removeFirst()
            flushedCount -= 1
            // Small writes flushed together (an HTTP head and its body, a framing prefix
            // and its payload) go out as one record, not one record each: copied into one
            // buffer of their total size. A write above `coalescedWriteLimit` is never
            // copied, and a lone small write is written as it is.
            let limit = ByteBufferTransport.coalescedWriteLimit
            var runLength = buffer.readableBytes, runCount = 1
            if runLength <= limit {
                var index = pendingWrites.startIndex
                while runCount <= flushedCount {
                    let size = pendingWrites[index].0.readableBytes
                    guard size <= limit, runLength + size <= ByteBufferTransport.recordPlaintext else { break }
                    runLength += size
                    runCount += 1
                    index = pendingWrites.index(after: index)
                }
            }
            if runCount > 1 {
                var joined = context.channel.allocator.buffer(capacity: runLength)
                joined.writeImmutableBuffer(buffer)
                if let promise { run.append(promise) }
                for _ in 1..<runCount {
                    let (next, nextPromise) = pendingWrites.removeFirst()
                    flushedCount -= 1
                    joined.writeImmutableBuffer(next)
                    if let nextPromise { run.append(nextPromise) }
                }
                (buffer, promise) = (joined, nil)
            }
            let result = buffer.withUnsafeReadableBytes { connection.write($0) }
            if result < 0 || (result == 0 && buffer.readableBytes > 0) {
                let error = connectionError(result)
                promise?.fail(error)
                for each in run { each.fail(error) }
                for each in promises { each.fail(error) }
                fail(context: context, error)
                return
            }
            promises.append(contentsOf: run)
            run.removeAll(keepingCapacity: true)
            if let promise { promises.append(promise) }
        }
        var combined = promises.first
        if promises.count > 1 {
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

    /// `.all`: close_notify, then wait (at most ``shutdownTimeout``) for the peer's; during
    /// the handshake, closes at once. `.output`: the buffered writes, close_notify, then the
    /// output is closed. `.input`: unsupported.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .input: promise?.fail(ChannelError.operationUnsupported)
        case .output: closeOutput(context: context, promise: promise)
        case .all: closeAll(context: context, promise: promise)
        }
    }

    private func closeOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch state {
        case .idle, .outputClosed, .closed, .unwrapping, .unwrapped:
            context.close(mode: .output, promise: promise)
        case .closing:
            chain(promise, to: &closePromise)
        case .handshaking:
            // After the handshake: the writes buffered so far, flushed or not, then
            // close_notify. Writes issued after this fail with `outputClosed`.
            closeOutputAfterHandshake = true
            flushedCount = pendingWrites.count
            chain(promise, to: &closeOutputPromise)
        case .inputClosed:
            closeAll(context: context, promise: promise)
        case .active:
            // NIOSSL sends the writes not yet flushed too: close(mode: .output) is a flush.
            flushedCount = pendingWrites.count
            encryptFlushedWrites(context: context)
            guard case .active = state else {
                // A write's failure, or a close from one of their promises, got there first.
                closeOutput(context: context, promise: promise)
                return
            }
            state = .outputClosed
            chain(promise, to: &closeOutputPromise)
            let result = connection.shutdown()
            writeOutbound(context: context, promise: nil)
            guard case .outputClosed = state else { return }
            if result < 0, ![.wantRead, .wantWrite].contains(connection.error(for: result)) {
                fail(context: context, connectionError(result))
                return
            }
            context.close(mode: .output, promise: closeOutputPromise.take())
        }
    }

    private func closeAll(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch state {
        case .closing:
            chain(promise, to: &closePromise)
        case .unwrapping(let timer):
            // Our close_notify is out already; closing now outranks unwrapping.
            state = .closing(timer)
            chain(promise, to: &closePromise)
            unwrapPromise.take()?.fail(ChannelError.alreadyClosed)
        case .idle, .closed, .unwrapped:
            state = .closed
            failPendingWrites(ChannelError.ioOnClosedChannel)
            context.close(promise: promise)
        case .handshaking:
            // No close_notify before the handshake completes (SSL_shutdown refuses it, and
            // NIOSSL closes at once too): a stalled peer must not hold the close.
            chain(promise, to: &closePromise)
            closeOutputPromise.take()?.fail(ChannelError.ioOnClosedChannel)
            closeChannel(context: context)
        case .active, .inputClosed, .outputClosed:
            chain(promise, to: &closePromise)
            beginShutdown(context: context, failingWritesWith: ChannelError.ioOnClosedChannel, State.closing)
        }
    }

    /// The start of `close(mode: .all)` and ``stopTLS(promise:)`` from an open session: the
    /// flushed writes go out, the others fail, then close_notify, waiting in `waiting`
    /// (with its time-out) for the peer's. Nothing more if a write's promise closed first.
    private func beginShutdown(context: ChannelHandlerContext, failingWritesWith error: ChannelError,
                               _ waiting: (Scheduled<Void>) -> State) {
        encryptFlushedWrites(context: context)
        switch state {
        case .active, .inputClosed, .outputClosed: break
        case .idle, .handshaking, .closing, .unwrapping, .unwrapped, .closed: return  // closed meanwhile
        }
        failPendingWrites(error)
        state = waiting(scheduleShutdownTimeout(context: context))
        shutdownStep(context: context)
    }

    private func shutdownTimedOut() {
        guard let context = storedContext else { return }
        switch state {
        case .closing:
            closeChannel(context: context)
        case .unwrapping:
            unwrap(context: context, error: TLSError(.timedOut,
                "the peer did not answer close_notify within \(shutdownTimeout): TLS was not stopped cleanly", backend: backendID))
        case .idle, .handshaking, .active, .inputClosed, .outputClosed, .unwrapped, .closed:
            return
        }
    }

    private func cancelShutdownTimer() {
        switch state {
        case .closing(let timer), .unwrapping(let timer): timer.cancel()
        case .idle, .handshaking, .active, .inputClosed, .outputClosed, .unwrapped, .closed: break
        }
    }

    /// Completes `promise` with `stored`, storing it if there is none yet.
    private func chain(_ promise: EventLoopPromise<Void>?, to stored: inout EventLoopPromise<Void>?) {
        guard let promise else { return }
        if let stored { stored.futureResult.cascade(to: promise) } else { stored = promise }
    }

    // MARK: - Unwrapping

    /// Ends TLS and hands the channel back in plaintext, as `NIOSSLHandler.stopTLS`
    /// does: the buffered flushed writes go out, then close_notify; once the peer's
    /// close_notify has arrived the handler removes itself, and any bytes that followed
    /// the peer's close_notify are passed on as plaintext (the next protocol's).
    /// Writes issued meanwhile fail with `ChannelError.outputClosed`: nothing written for
    /// the TLS session leaves in plaintext.
    ///
    /// If the peer does not answer within ``shutdownTimeout``, or its input ends first,
    /// the handler is removed all the same and the error (`timedOut`, `unexpectedEOF`)
    /// fails `promise` and is fired; the channel is not closed. Before the handshake
    /// started the handler is simply removed; during the handshake the promise fails with
    /// `shutdownDuringHandshake`. Call on the channel's event loop.
    public func stopTLS(promise: EventLoopPromise<Void>?) {
        switch state {
        case .unwrapping, .closing:
            chain(promise, to: &unwrapPromise)
        case .idle:
            guard let context = storedContext else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            chain(promise, to: &unwrapPromise)
            unwrap(context: context, error: nil)
        case .handshaking:
            promise?.fail(TLSError(.shutdownDuringHandshake,
                                   "stopTLS during the handshake: there is no TLS session to stop yet", backend: backendID))
        case .active, .inputClosed, .outputClosed:
            guard let context = storedContext else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            chain(promise, to: &unwrapPromise)
            beginShutdown(context: context, failingWritesWith: ChannelError.outputClosed, State.unwrapping)
        case .unwrapped:
            promise?.succeed()
        case .closed:
            promise?.fail(ChannelError.alreadyClosed)
        }
    }

    /// Leaves the pipeline; then passes on what followed the peer's close_notify.
    private func unwrap(context: ChannelHandlerContext, error: TLSError?) {
        cancelShutdownTimer()
        state = .unwrapped
        failPendingWrites(ChannelError.outputClosed)
        let promise = unwrapPromise.take()
        let remainder = wire?.takeInbound(allocator: context.channel.allocator)
        let removed = context.eventLoop.makePromise(of: Void.self)
        removed.futureResult.assumeIsolated().whenComplete { result in
            if let remainder {
                context.fireChannelRead(NIOAny(remainder))
                context.fireChannelReadComplete()
            }
            if let error { context.fireErrorCaught(error) }
            switch (result, error) {
            case (.failure(let failure), _): promise?.fail(failure)
            case (.success, .some(let error)): promise?.fail(error)
            case (.success, .none): promise?.succeed()
            }
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: removed)
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
    ///   - customVerificationCallback: judges the server's certificate, possibly later
    ///     (NIOSSL's `customVerificationCallback`; see ``TLSKitCustomVerificationCallback``).
    public init(context: TLSContext, serverHostname: String?, shutdownTimeout: TimeAmount = .seconds(5),
                customVerificationCallback: TLSKitCustomVerificationCallback? = nil) throws {
        let connection = context.makeConnection()
        if let serverHostname {
            // The same rule the connection applies when the handshake starts, checked
            // here so that a bad name fails at construction, as NIOSSLClientHandler's does.
            try TLSConfiguration.checkServerName(serverHostname)
            connection.serverName = serverHostname
        }
        try connection.setConnectState()
        super.init(connection: connection, shutdownTimeout: shutdownTimeout,
                   customVerificationCallback: customVerificationCallback)
    }
}

/// The server end: `NIOSSLServerHandler`'s counterpart.
public final class TLSKitServerHandler: TLSKitHandler {
    /// Creates a server handler.
    /// - Parameters:
    ///   - context: the TLSKit context (either backend), with the server's identity.
    ///   - shutdownTimeout: how long `close(mode: .all)` waits for the peer's close_notify.
    ///   - customVerificationCallback: judges the client's certificate (when the context
    ///     requests one), possibly later (see ``TLSKitCustomVerificationCallback``).
    public init(context: TLSContext, shutdownTimeout: TimeAmount = .seconds(5),
                customVerificationCallback: TLSKitCustomVerificationCallback? = nil) {
        let connection = context.makeConnection()
        try! connection.setAcceptState()  // a fresh connection has no role: cannot throw
        super.init(connection: connection, shutdownTimeout: shutdownTimeout,
                   customVerificationCallback: customVerificationCallback)
    }
}
#endif
