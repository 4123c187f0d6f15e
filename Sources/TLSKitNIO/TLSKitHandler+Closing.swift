#if NIO
public import NIOCore
internal import NIOTLS
internal import TLSCore

// Closing: close(mode:) and the shutdown machine (close_notify both ways, the time-out,
// half-closure), and stopTLS, which ends TLS and hands the channel back in plaintext.
extension TLSKitHandler {
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

    func closeOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
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

    func closeAll(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
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
    func beginShutdown(context: ChannelHandlerContext, failingWritesWith error: ChannelError,
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

    func shutdownTimedOut() {
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

    func cancelShutdownTimer() {
        switch state {
        case .closing(let timer), .unwrapping(let timer): timer.cancel()
        case .idle, .handshaking, .active, .inputClosed, .outputClosed, .unwrapped, .closed: break
        }
    }

    /// Completes `promise` with `stored`, storing it if there is none yet.
    func chain(_ promise: EventLoopPromise<Void>?, to stored: inout EventLoopPromise<Void>?) {
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
    func unwrap(context: ChannelHandlerContext, error: TLSError?) {
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
#endif
