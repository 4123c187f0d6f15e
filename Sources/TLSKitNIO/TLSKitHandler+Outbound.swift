#if NIO
public import NIOCore
internal import NIOTLS
internal import TLSCore

// Outbound: the write queue (buffered until the handshake completes, flushed in order,
// each promise kept) and the ciphertext it becomes.
extension TLSKitHandler {
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
    func encryptFlushedWrites(context: ChannelHandlerContext) {
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
    func writeOutbound(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if let buffer = wire.takeOutbound() {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        } else if let promise {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        }
    }

    func failPendingWrites(_ error: any Error) {
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
}
#endif
