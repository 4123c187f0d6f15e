#if NIO
internal import NIOCore
internal import TLSCore

/// The transport a handler gives its `TLSConnection`: ciphertext in and out as
/// `ByteBuffer`s, with no copy beyond the one the C library makes into or out of its
/// record buffer.
///
/// Incoming: the buffers the channel read are queued as they came, never appended to one
/// another (a record split across two reads is copied by the library straight out of
/// both). Outgoing: the library's records are appended to one buffer, handed to the
/// channel at each flush point. Once the channel has let go of it, the buffer's storage is
/// written again, not allocated anew (``keepsOutboundStorage``).
final class ByteBufferTransport: TLSCustomTransport {
    private var inbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Readable bytes in `inbound`.
    private(set) var pendingInbound = 0
    /// Set once the channel's input ended: the library then sees end-of-stream.
    var inboundClosed = false
    /// The buffer being filled; once taken, kept empty (reader = writer index) for its
    /// storage when ``keepsOutboundStorage``.
    private var outbound: ByteBuffer?
    /// Whether the outgoing buffer's storage is kept between flushes, to be written again
    /// once the channel has let go of it. Set by the handler at the first flush of
    /// application data, so that a connection that never sends data keeps no buffer.
    var keepsOutboundStorage = false

    /// The largest outgoing buffer kept between flushes; a larger one (a flush of many
    /// records) is let go with its slice.
    static let keptOutboundCapacity = 4 * recordCapacity
    private let allocator: ByteBufferAllocator

    /// Room for one full record and its overhead: the first outgoing buffer's capacity.
    static let recordCapacity = 16_384 + 512

    /// The most plaintext one record carries.
    static let recordPlaintext = 16_384
    /// The largest plaintext write the handler copies so that it shares a record with the
    /// small writes flushed next to it (an HTTP head and its body): one record, one seal
    /// and 22 bytes of overhead instead of one per write. Larger writes are never copied.
    static let coalescedWriteLimit = 4_096

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
    }

    /// Gives the connection ciphertext that arrived from the peer.
    func receive(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        inbound.append(buffer)
        pendingInbound += buffer.readableBytes
    }

    /// Takes the ciphertext the connection has written since the last call, if any.
    func takeOutbound() -> ByteBuffer? {
        guard var buffer = outbound, buffer.readableBytes > 0 else { return nil }
        guard keepsOutboundStorage, buffer.capacity <= Self.keptOutboundCapacity else {
            outbound = nil
            return buffer
        }
        // A slice shares the storage; `write` clears `outbound` before writing again,
        // which reuses the storage if the channel has dropped the slice by then.
        let slice = buffer.readSlice(length: buffer.readableBytes)!
        outbound = buffer
        return slice
    }

    /// Takes every byte received and not read by the connection, as one buffer; nil if
    /// there is none. (``TLSKitHandler/stopTLS(promise:)``: what followed the peer's
    /// close_notify belongs to the protocol after TLS.)
    func takeInbound(allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard pendingInbound > 0 else { return nil }
        var all = inbound.count == 1 ? inbound[inbound.startIndex] : allocator.buffer(capacity: pendingInbound)
        if inbound.count > 1 {
            for var each in inbound { all.writeBuffer(&each) }
        }
        inbound.removeAll()
        pendingInbound = 0
        return all
    }

    /// Drops every buffered byte (the handler is gone or the channel closed).
    func discardAll() {
        inbound.removeAll()
        pendingInbound = 0
        outbound = nil
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        guard pendingInbound > 0 else { return inboundClosed ? .endOfStream : .wouldBlock }
        var copied = 0
        while copied < buffer.count, !inbound.isEmpty {
            let count = inbound[inbound.startIndex].withUnsafeReadableBytes { source in
                let count = min(source.count, buffer.count - copied)
                (buffer.baseAddress! + copied).copyMemory(from: source.baseAddress!, byteCount: count)
                return count
            }
            copied += count
            if count == inbound[inbound.startIndex].readableBytes {
                inbound.removeFirst()
            } else {
                inbound[inbound.startIndex].moveReaderIndex(forwardBy: count)
            }
        }
        pendingInbound -= copied
        return .transferred(copied)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        if outbound == nil {
            outbound = allocator.buffer(capacity: max(bytes.count, Self.recordCapacity))
        } else if outbound!.readableBytes == 0 {
            // Taken by the channel: the same storage if the channel let go of it (no
            // allocation), else a new one of the same capacity (no copy).
            outbound!.clear()
        }
        outbound!.writeBytes(bytes)
        return .transferred(bytes.count)
    }
}
#endif
