#if NIO
internal import NIOCore
internal import TLSKit

/// The transport a handler gives its `TLSConnection`: ciphertext in and out as
/// `ByteBuffer`s, with no copy beyond the one the C library makes into or out of its
/// record buffer.
///
/// Incoming: the buffers the channel read are kept as they came (the first is stored,
/// not copied; a later one is appended only while the previous one still holds part of a
/// record), and the library copies out of them. Outgoing: the library's records are
/// appended to one buffer, handed to the channel at each flush point.
final class ByteBufferTransport: TLSCustomTransport {
    private var inbound: ByteBuffer?
    /// Set once the channel's input ended: the library then sees end-of-stream.
    var inboundClosed = false
    private var outbound: ByteBuffer?
    private let allocator: ByteBufferAllocator

    /// Room for one full record and its overhead: the first outgoing buffer's capacity.
    private static let recordCapacity = 16_384 + 512

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
    }

    /// Ciphertext the channel read and the connection has not consumed yet.
    var pendingInbound: Int { inbound?.readableBytes ?? 0 }

    /// Gives the connection ciphertext that arrived from the peer.
    func receive(_ buffer: ByteBuffer) {
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = buffer
        } else {
            inbound!.writeImmutableBuffer(buffer)
        }
    }

    /// Takes the ciphertext the connection has written since the last call, if any.
    func takeOutbound() -> ByteBuffer? {
        guard let buffer = outbound, buffer.readableBytes > 0 else { return nil }
        outbound = nil
        return buffer
    }

    /// Drops every buffered byte (the handler is gone or the channel closed).
    func discardAll() {
        inbound = nil
        outbound = nil
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        guard inbound != nil, inbound!.readableBytes > 0 else {
            inbound = nil
            return inboundClosed ? .endOfStream : .wouldBlock
        }
        let count = inbound!.withUnsafeReadableBytes { source in
            let count = min(source.count, buffer.count)
            buffer.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: count)
            return count
        }
        inbound!.moveReaderIndex(forwardBy: count)
        return .transferred(count)
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
