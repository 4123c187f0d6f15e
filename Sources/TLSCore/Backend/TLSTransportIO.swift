// Public import: the backend SPI hands TLSTransportIO the C library's `iovec`s.
#if canImport(Glibc)
public import Glibc
#elseif canImport(Musl)
public import Musl
#elseif canImport(Darwin)
public import Darwin
#endif

/// The transport as the backends see it: one read and one write entry point for the C
/// library's callbacks (an OpenSSL `BIO_METHOD`, GnuTLS push/pull functions), and a
/// record of how the transport last failed so that the connection can report
/// `.syscall` with its `errno`, or unexpected EOF, the same way on every backend.
@_spi(TLSBackendImplementation) public final class TLSTransportIO {
    private let stream: any TLSCustomTransport
    /// The `errno` of the last failed transport call, if any since ``resetStatus()``.
    @_spi(TLSBackendImplementation) public private(set) var failureErrno: Int32?
    /// True once a read saw end-of-stream.
    @_spi(TLSBackendImplementation) public private(set) var reachedEndOfStream = false
    /// The `errno` of the first failed call. A failed transport stays failed: later
    /// calls report the same error without touching the stream. (GnuTLS swallows a
    /// write error that follows a partial write and pushes again; a one-off failure
    /// would then go unreported there while OpenSSL reports it.)
    private var deadErrno: Int32?

    /// The wire reader over every incoming byte (record headers only, once the
    /// handshake is over): what the libraries check differently, checked once.
    @_spi(TLSBackendImplementation) public var wire = TLSWireReader()

    /// The same stream when it writes vectors natively (a socket), cast once.
    private let vectorStream: (any TLSVectorWritable)?

    init(_ stream: any TLSCustomTransport) {
        self.stream = stream
        self.vectorStream = stream as? any TLSVectorWritable
    }

    /// (level, description) of the last complete incoming record if it was an
    /// unprotected 2-byte alert the peer could still send.
    @_spi(TLSBackendImplementation) public var lastPlaintextAlert: (level: UInt8, description: UInt8)? { wire.lastPlaintextAlert }

    /// Clears the failure record; the connection calls this before each TLS call.
    @_spi(TLSBackendImplementation) public func resetStatus() { failureErrno = nil }

    /// Bytes read ahead by the core (the ClientHello a server's identity selector judged),
    /// given to the backend's next reads before anything from the stream.
    private var pushedBack: [UInt8] = []
    private var pushedBackIndex = 0

    /// Reads for the backend; the result is recorded.
    @_spi(TLSBackendImplementation) public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        if buffer.count == 0 { return .transferred(0) }
        if pushedBackIndex < pushedBack.count {
            let count = min(buffer.count, pushedBack.count - pushedBackIndex)
            pushedBack.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + pushedBackIndex, byteCount: count)
            }
            pushedBackIndex += count
            if pushedBackIndex == pushedBack.count {
                pushedBack = []
                pushedBackIndex = 0
            }
            wire.consume(UnsafeRawBufferPointer(rebasing: buffer.prefix(count)))
            return .transferred(count)
        }
        let result = readAhead(into: buffer)
        if case .transferred(let count) = result {
            wire.consume(UnsafeRawBufferPointer(rebasing: buffer.prefix(count)))
        }
        return result
    }

    /// Reads from the stream, recording failures and end-of-stream, without showing the
    /// bytes to the wire reader: ``read(into:)``'s I/O, and the core's own read of the
    /// ClientHello (the gate), whose bytes the wire reader sees once ``pushBack(_:)`` has
    /// handed them to the backend.
    func readAhead(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        if let deadErrno {
            failureErrno = deadErrno
            return .failed(errno: deadErrno)
        }
        let result = stream.read(into: buffer)
        switch result {
        case .transferred, .wouldBlock: break
        case .endOfStream: reachedEndOfStream = true
        case .failed(let error):
            failureErrno = error
            deadErrno = error
        }
        return result
    }

    /// Gives bytes read ahead back: the backend's next reads return them first.
    func pushBack(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        pushedBack = Array(pushedBack[pushedBackIndex...]) + bytes
        pushedBackIndex = 0
    }

    /// Writes for the backend; the result is recorded.
    @_spi(TLSBackendImplementation) public func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        if bytes.count == 0 { return .transferred(0) }
        return recordingWrite { stream.write(bytes) }
    }

    /// A write on a live stream, its failure recorded (sticky); the recorded failure
    /// without touching the stream once it has failed.
    private func recordingWrite(_ write: () -> TLSIOResult) -> TLSIOResult {
        if let deadErrno {
            failureErrno = deadErrno
            return .failed(errno: deadErrno)
        }
        let result = write()
        switch result {
        case .transferred, .wouldBlock: break
        case .endOfStream:
            failureErrno = EPIPE
            deadErrno = EPIPE
        case .failed(let error):
            failureErrno = error
            deadErrno = error
        }
        return result
    }

    /// True when the stream writes several buffers in one call (a socket: `sendmsg`).
    @_spi(TLSBackendImplementation) public var writesVectors: Bool { vectorStream != nil }

    /// How many bytes a read can take now without waiting (`FIONREAD` on a socket; 0
    /// also at end of stream); `Int.max` for streams whose reads never wait. For a
    /// backend that holds its writes and must send them before it waits for the peer.
    @_spi(TLSBackendImplementation) public var readableBytes: Int {
        guard let socket = stream as? SocketStream else { return .max }
        var count: Int32 = 0
        return ioctl(socket.descriptor, UInt(FIONREAD), &count) == 0 ? Int(count) : 0
    }

    /// Writes several buffers in order, in one call, for a backend that hands over a
    /// whole flight at once (GnuTLS's vector push, installed when ``writesVectors``).
    /// Returns the bytes written (a prefix of the concatenation), or what blocked or
    /// failed. On a stream without vectored writes, writes the first non-empty buffer.
    @_spi(TLSBackendImplementation) public func write(vectors: UnsafeBufferPointer<iovec>) -> TLSIOResult {
        guard let vectorStream else {
            guard let first = vectors.first(where: { $0.iov_len > 0 }) else { return .transferred(0) }
            return write(UnsafeRawBufferPointer(start: first.iov_base, count: first.iov_len))
        }
        if vectors.allSatisfy({ $0.iov_len == 0 }) { return .transferred(0) }
        return recordingWrite { vectorStream.write(vectors: vectors) }
    }
}
