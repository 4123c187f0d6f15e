#if NIO
internal import NIOCore
internal import TLSKit

/// The transport a handler gives its `TLSConnection`: ciphertext in and out as
/// `ByteBuffer`s, with no copy beyond the one the C library makes into or out of its
/// record buffer.
///
/// Incoming: the buffers the channel read are queued as they came, never appended to one
/// another (a record split across two reads is copied by the library straight out of
/// both). Outgoing: the library's records are appended to one buffer, handed to the
/// channel at each flush point.
final class ByteBufferTransport: TLSCustomTransport {
    private var inbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Readable bytes in `inbound`.
    private(set) var pendingInbound = 0
    /// Set once the channel's input ended: the library then sees end-of-stream.
    var inboundClosed = false
    private var outbound: ByteBuffer?
    private let allocator: ByteBufferAllocator

    /// Room for one full record and its overhead: the first outgoing buffer's capacity.
    static let recordCapacity = 16_384 + 512

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
        guard let buffer = outbound, buffer.readableBytes > 0 else { return nil }
        outbound = nil
        return buffer
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
        }
        outbound!.writeBytes(bytes)
        return .transferred(bytes.count)
    }
}
#endif
