#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Reading certificates, keys and CRLs from where a TLSDataSource says they are: the same
// size cap and errors for every backend.

extension TLSDataSource {
    /// True when the bytes are PEM text (contain a `-----BEGIN` line), false for DER.
    @_spi(TLSBackendImplementation) public static func isPEM(_ bytes: [UInt8]) -> Bool {
        let marker = Array("-----BEGIN".utf8)
        guard bytes.count >= marker.count else { return false }
        for start in 0...(bytes.count - marker.count) where bytes[start] == marker[0] {
            if Array(bytes[start..<start + marker.count]) == marker { return true }
        }
        return false
    }

    /// The largest file TLSKit reads (certificates, keys, bundles), on every backend.
    @_spi(TLSBackendImplementation) public static let maximumFileSize = 16 << 20

    /// The bytes, reading the file if needed: the one file reader of every backend. A
    /// missing or unreadable file, or one over ``maximumFileSize``, is a ``TLSError``
    /// with the given code, naming the path.
    @_spi(TLSBackendImplementation) public func load(backend: TLSBackendID, code: TLSError.Code, what: String) throws -> [UInt8] {
        switch self {
        case .bytes(let bytes):
            return bytes
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                throw TLSError(code, "cannot open \(what) file \(path): \(reason)", backend: backend)
            }
            defer { close(fd) }
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
                if n == 0 { break }
                if n < 0 {
                    if errno == EINTR { continue }
                    let reason = String(cString: strerror(errno))
                    throw TLSError(code, "cannot read \(what) file \(path): \(reason)", backend: backend)
                }
                result.append(contentsOf: chunk[0..<n])
                if result.count > Self.maximumFileSize {
                    throw TLSError(code, "\(what) file \(path) is larger than \(Self.maximumFileSize >> 20) MiB", backend: backend)
                }
            }
            return result
        }
    }
}
