#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The outcome of one transport read or write.
public enum TLSIOResult: Sendable, Hashable {
    /// This many bytes were read or written (at least 1).
    case transferred(Int)
    /// Nothing can be done now; the TLS call returns -1 with want-read/want-write.
    case wouldBlock
    /// The stream ended (reads only): no more bytes will ever arrive.
    case endOfStream
    /// The transport failed with this `errno`; the TLS call returns -1 with `.syscall`.
    case failed(errno: Int32)
}

/// A transport you implement: TLSKit calls these to move ciphertext.
///
/// Return ``TLSIOResult/wouldBlock`` when no progress is possible now; the TLS call then
/// returns -1 and ``TLSConnection/error(for:)`` says ``TLSResultCode/wantRead`` or
/// ``TLSResultCode/wantWrite``. Call the TLS function again once progress is possible.
public protocol TLSCustomTransport: AnyObject {
    /// Reads up to `buffer.count` bytes into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult
    /// Writes some of `bytes` (at least one byte on success).
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult
}

/// What carries a connection's ciphertext: the underlying BIO of the OpenSSL manual.
///
/// - ``socket(_:)``: a connected socket (or pipe) descriptor. Blocking or non-blocking
///   as the descriptor is; the descriptor stays owned by the caller.
/// - ``memory(_:)``: one end of a ``TLSMemoryPair``; the caller moves the bytes.
/// - ``custom(_:)``: your own read and write functions.
public struct TLSTransport {
    @_spi(TLSBackendImplementation) public let io: TLSTransportIO

    /// A connected socket descriptor. TLSKit never closes it and never changes its
    /// blocking mode; `SIGPIPE` is never raised (writes use `MSG_NOSIGNAL`).
    public static func socket(_ descriptor: Int32) -> TLSTransport {
        TLSTransport(io: TLSTransportIO(SocketStream(descriptor: descriptor)))
    }

    /// The TLS side of an in-memory pair; the caller moves bytes on the other side.
    public static func memory(_ pair: TLSMemoryPair) -> TLSTransport {
        TLSTransport(io: TLSTransportIO(pair))
    }

    /// Your own read and write functions.
    public static func custom(_ transport: any TLSCustomTransport) -> TLSTransport {
        TLSTransport(io: TLSTransportIO(transport))
    }
}

/// The in-memory transport: the `BIO_new_bio_pair` equivalent.
///
/// The TLS connection writes its outgoing records into the pair and reads incoming
/// records from it; the application moves those bytes to the peer however it likes
/// (another in-memory pair, a socket, an event loop). Nothing is ever read or written
/// behind the caller's back: when the pair has no incoming bytes the TLS call returns
/// -1 with ``TLSResultCode/wantRead``; when the outgoing buffer is full it returns -1
/// with ``TLSResultCode/wantWrite``.
///
/// ```swift
/// let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
/// client.setTransport(.memory(clientWire)); server.setTransport(.memory(serverWire))
/// // after each call: move bytes both ways
/// TLSMemoryPair.exchange(clientWire, serverWire)
/// ```
///
/// A pair is used by one connection on one thread at a time, like the connection itself.
public final class TLSMemoryPair: TLSCustomTransport {
    private var incoming = ByteQueue()
    private var outgoing = ByteQueue()
    private var incomingClosed = false
    /// The most bytes the outgoing buffer holds before the connection gets want-write.
    public let capacity: Int

    /// Creates a pair whose outgoing buffer holds at most `capacity` bytes (the BIO
    /// pair's write buffer size; `Int.max` for unbounded).
    public init(capacity: Int = 64 * 1024) {
        precondition(capacity > 0, "TLSMemoryPair capacity must be positive")
        self.capacity = capacity
    }

    // MARK: the application's side

    /// Bytes the connection has written and nobody has taken yet.
    public var pendingOutgoing: Int { outgoing.count }
    /// Bytes given with ``deliverIncoming(_:)`` that the connection has not read yet.
    public var pendingIncoming: Int { incoming.count }

    /// Takes up to `maxBytes` of the connection's outgoing ciphertext.
    public func takeOutgoing(maxBytes: Int = .max) -> [UInt8] {
        outgoing.take(maxBytes)
    }

    /// Gives the connection ciphertext that arrived from the peer.
    public func deliverIncoming<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        incoming.append(contentsOf: bytes)
    }

    /// Marks the incoming stream as ended: once the buffered bytes are read, the
    /// connection sees end-of-stream (the peer vanished, or closed its socket).
    public func closeIncoming() { incomingClosed = true }

    /// Moves every pending outgoing byte of `a` to `b` and of `b` to `a`. Returns the
    /// number of bytes moved; 0 means the two connections have nothing to say.
    @discardableResult
    public static func exchange(_ a: TLSMemoryPair, _ b: TLSMemoryPair) -> Int {
        a.outgoing.moveAll(to: &b.incoming) + b.outgoing.moveAll(to: &a.incoming)
    }

    // MARK: the connection's side

    /// Called by the connection: reads incoming ciphertext.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        if incoming.count == 0 { return incomingClosed ? .endOfStream : .wouldBlock }
        return .transferred(incoming.read(into: buffer))
    }

    /// Called by the connection: writes outgoing ciphertext, up to the capacity.
    public func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        let room = capacity - outgoing.count
        if room <= 0 { return .wouldBlock }
        let count = min(room, bytes.count)
        outgoing.append(UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        return .transferred(count)
    }
}

/// A FIFO of bytes with amortised O(1) append and consume.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }

    mutating func append<Bytes: Sequence>(contentsOf bytes: Bytes) where Bytes.Element == UInt8 {
        storage.append(contentsOf: bytes)
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes)
    }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, count)
        storage.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + head, byteCount: n)
        }
        consume(n)
        return n
    }

    /// Moves every byte to the end of `other` and empties this queue; returns how many.
    /// When `other` is empty the two storages are swapped: no copy and no allocation, so
    /// the buffers of an exchanging pair are reused record after record.
    mutating func moveAll(to other: inout ByteQueue) -> Int {
        let n = count
        if n == 0 { return 0 }
        if other.count == 0 {
            swap(&storage, &other.storage)
            other.head = head
            storage.removeAll(keepingCapacity: true)
        } else {
            storage.withUnsafeBytes { other.append(UnsafeRawBufferPointer(rebasing: $0[head...])) }
            storage.removeAll(keepingCapacity: true)
        }
        head = 0
        return n
    }

    mutating func take(_ maxBytes: Int) -> [UInt8] {
        let n = min(maxBytes, count)
        if n == 0 { return [] }
        if head == 0 && n == storage.count {
            defer { storage = [] }
            return storage
        }
        let result = Array(storage[head..<head + n])
        consume(n)
        return result
    }

    private mutating func consume(_ n: Int) {
        head += n
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }
}

/// A stream that can write several buffers in one call (a socket: one `sendmsg`).
protocol TLSVectorWritable: AnyObject {
    /// Writes some of the bytes of `vectors`, in order (at least one byte on success).
    func write(vectors: UnsafeBufferPointer<iovec>) -> TLSIOResult
}

/// A socket (or pipe) descriptor as a byte stream. `recv`/`send` with `MSG_NOSIGNAL`,
/// falling back to `read`/`write` for descriptors that are not sockets.
final class SocketStream: TLSCustomTransport, TLSVectorWritable {
    let descriptor: Int32
    private var isSocket = true

    init(descriptor: Int32) { self.descriptor = descriptor }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        while true {
            let n = isSocket
                ? recv(descriptor, buffer.baseAddress, buffer.count, 0)
                : systemRead(descriptor, buffer.baseAddress, buffer.count)
            if n > 0 { return .transferred(n) }
            if n == 0 { return .endOfStream }
            let error = errno
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ENOTSOCK where isSocket: isSocket = false; continue
            default: return .failed(errno: error)
            }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        writing(bytes.count) { isSocket in
            isSocket ? send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                     : systemWrite(descriptor, bytes.baseAddress, bytes.count)
        }
    }

    /// One `sendmsg` (`writev` for a non-socket) for a whole flight of records, as a
    /// C program's socket transport does, rather than one `send` per record.
    func write(vectors: UnsafeBufferPointer<iovec>) -> TLSIOResult {
        writing(vectors.reduce(0) { $0 + $1.iov_len }) { isSocket in
            guard isSocket else { return writev(descriptor, vectors.baseAddress, Int32(vectors.count)) }
            var message = msghdr()
            message.msg_iov = UnsafeMutablePointer(mutating: vectors.baseAddress)
            message.msg_iovlen = vectors.count
            return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL))
        }
    }

    /// Runs a write system call (given whether the descriptor is a socket) until it does
    /// something other than EINTR, falling back to the non-socket call on ENOTSOCK.
    private func writing(_ total: Int, _ call: (_ isSocket: Bool) -> Int) -> TLSIOResult {
        while true {
            let n = call(isSocket)
            if n >= 0 { return n == 0 && total > 0 ? .wouldBlock : .transferred(n) }
            let error = errno
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ENOTSOCK where isSocket: isSocket = false; continue
            default: return .failed(errno: error)
            }
        }
    }
}

