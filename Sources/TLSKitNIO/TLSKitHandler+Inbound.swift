#if NIO
public import NIOCore
internal import NIOTLS
internal import TLSCore

// Inbound: ciphertext from the channel through the connection, plaintext to the
// pipeline in batches, the handshake steps, and what ends input (close_notify, EOF).
extension TLSKitHandler {
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
    var readsForItself: Bool {
        switch state {
        case .handshaking, .closing, .unwrapping: return true
        case .idle, .active, .inputClosed, .outputClosed, .unwrapped, .closed: return false
        }
    }

    var isActiveOrHandshaking: Bool {
        switch state {
        case .handshaking, .active, .outputClosed, .closing, .unwrapping: return true
        case .idle, .inputClosed, .unwrapped, .closed: return false
        }
    }

    func autoRead(_ context: ChannelHandlerContext) -> Bool {
        (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
    }

    func allowsRemoteHalfClosure(_ context: ChannelHandlerContext) -> Bool {
        (try? context.channel.syncOptions?.getOption(ChannelOptions.allowRemoteHalfClosure)) ?? false
    }

    func handshakeStep(context: ChannelHandlerContext) {
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
            resumeAfterCallback(context: context, clientHello: false)
        case .wantClientHello:
            resumeAfterCallback(context: context, clientHello: true)
        case .zeroReturn:
            fail(context: context, TLSError(.closedByPeer, "the peer closed the session (close_notify) during the handshake",
                                            backend: backendID))
        case .ssl, .syscall:
            fail(context: context, connectionError(result))
        }
    }

    /// The custom verification or the server identity selector answers later (a
    /// ``TLSKitCustomVerificationCallback`` promise, or a completion called from any
    /// thread): the handshake goes on, on the event loop, once it has. A handler that was
    /// removed, or whose channel closed, meanwhile ignores the answer; it is held weakly.
    func resumeAfterCallback(context: ChannelHandlerContext, clientHello: Bool) {
        let weakHandler = NIOLoopBound(TLSKitWeakHandler(self), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let resume: @Sendable () -> Void = {
            eventLoop.execute {
                guard let handler = weakHandler.value.handler, case .handshaking = handler.state,
                      let context = handler.storedContext else { return }
                handler.handshakeStep(context: context)
            }
        }
        // Set after the call that returned the want: an answer already in calls it at once.
        if clientHello {
            connection.clientHelloWakeUp = resume
        } else {
            connection.verificationWakeUp = resume
        }
    }

    func connectionError(_ result: Int32) -> TLSError {
        connection.lastError ?? TLSError(.internalError, "TLS call failed with result \(result)", backend: backendID)
    }

    /// A fatal failure: sends what the library queued (the alert), fires the error, closes.
    func fail(context: ChannelHandlerContext, _ error: any Error) {
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
    func closeChannel(context: ChannelHandlerContext) {
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
    func decode(context: ChannelHandlerContext) {
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
            case .wantRead, .wantWrite, .none, .wantRetryVerify, .wantClientHello:  // (a read never waits for a callback)
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
    func deliverPlaintext(context: ChannelHandlerContext) {
        guard plaintext != nil, plaintext!.readableBytes > 0 else { return }
        let buffer = plaintext!.readSlice(length: plaintext!.readableBytes)!
        deliveredSinceReadComplete = true
        readPending = false
        context.fireChannelRead(wrapInboundOut(buffer))
    }

    /// The peer's close_notify arrived.
    func peerClosed(context: ChannelHandlerContext) {
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
    func shutdownStep(context: ChannelHandlerContext) {
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
        case .wantRead, .wantWrite, .none, .wantRetryVerify, .wantClientHello:  // (shutdown never waits for a callback)
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
    func shutdownCompleted(context: ChannelHandlerContext) {
        cancelShutdownTimer()
        context.fireUserInboundEventTriggered(TLSUserEvent.shutdownCompleted)
        if case .unwrapping = state { unwrap(context: context, error: nil) } else { closeChannel(context: context) }
    }

    func scheduleDecode(context: ChannelHandlerContext) {
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

    func scheduleShutdownTimeout(context: ChannelHandlerContext) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: shutdownTimeout) { [weak self] in
            self?.shutdownTimedOut()
        }
    }
}
#endif
