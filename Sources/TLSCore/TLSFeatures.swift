import Synchronization

/// Chooses the ALPN protocol on a server from the client's offered list.
///
/// Return one of the offered names, or nil to refuse the connection with the fatal
/// `no_application_protocol` alert. Called on the handshake's thread.
public struct TLSApplicationProtocolSelector: Sendable, Hashable {
    private final class Box: Sendable {
        let select: @Sendable ([String]) -> String?
        init(_ select: @escaping @Sendable ([String]) -> String?) { self.select = select }
    }
    private let box: Box

    /// Wraps the selection function.
    public init(_ select: @escaping @Sendable (_ offered: [String]) -> String?) { box = Box(select) }

    /// Runs the selection; a result that was not offered counts as nil.
    package func select(_ offered: [String]) -> String? {
        guard let chosen = box.select(offered), offered.contains(chosen) else { return nil }
        return chosen
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

/// Receives TLS secrets in the `SSLKEYLOGFILE` format (one line per secret, no newline),
/// so that Wireshark or tshark can decrypt a capture. Anyone holding these lines can read
/// the traffic: use it for debugging only.
public struct TLSKeyLogger: Sendable, Hashable {
    private final class Box: Sendable {
        let log: @Sendable (String) -> Void
        init(_ log: @escaping @Sendable (String) -> Void) { self.log = log }
    }
    private let box: Box

    /// Wraps the logging function.
    public init(_ log: @escaping @Sendable (_ line: String) -> Void) { box = Box(log) }

    /// Passes one line on.
    package func log(_ line: String) { box.log(line) }

    /// Formats and passes one NSS key-log line: `LABEL <client_random hex> <secret hex>`.
    package func log(label: String, clientRandom: [UInt8], secret: [UInt8]) {
        box.log("\(label) \(TLSHex.encode(clientRandom)) \(TLSHex.encode(secret))")
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

/// A key that protects session tickets a server issues (80 random bytes: a 16-byte name,
/// then key material). Give the same keys to every server that should accept each
/// other's tickets; rotate by putting a new key first and keeping the old ones after it
/// for as long as their tickets should still be accepted.
public struct TLSSessionTicketKey: Sendable, Hashable {
    /// The key bytes (80).
    public let bytes: [UInt8]

    /// Wraps existing key bytes (80).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A fresh random key from the system's cryptographic generator.
    public static func generate() -> TLSSessionTicketKey {
        var generator = SystemRandomNumberGenerator()
        return TLSSessionTicketKey(bytes: (0..<80).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}

/// Whether a client asks for, or insists on, a stapled OCSP response (RFC 6066 §8).
public enum TLSOCSPStapling: Sendable, Hashable {
    /// Do not ask.
    case none
    /// Ask, and verify the staple if the server sends one (a "revoked" staple fails).
    case request
    /// Ask, and fail the handshake unless a valid "good" staple for the leaf is sent.
    case require
}

/// A resumable TLS session, exported by a client after a handshake and given back to a
/// later connection (in this process or another one) to resume it.
///
/// Two sessions are equal when their ``bytes`` and ``backend`` are.
public struct TLSSession: Sendable, Hashable {
    /// The backend's own serialisation of the session (contains secrets: store it safely).
    public let bytes: [UInt8]
    /// The backend that produced it: a session resumes only on the same backend.
    public let backend: String
    /// The backend's decoded form of ``bytes``, made by the first connection that
    /// resumes this session and shared by every copy of this value.
    package let decoded = TLSDecodedSession()

    /// Rebuilds a session from bytes produced by ``bytes`` on `backend`.
    public init(bytes: [UInt8], backend: String) {
        self.bytes = bytes
        self.backend = backend
    }

    public static func == (lhs: TLSSession, rhs: TLSSession) -> Bool {
        lhs.bytes == rhs.bytes && lhs.backend == rhs.backend
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes)
        hasher.combine(backend)
    }
}

/// A backend's decoded session, kept with a ``TLSSession`` (OpenSSL: an `SSL_SESSION`,
/// whose decoding parses the server's certificate: a third of a resumed handshake).
package final class TLSDecodedSession: Sendable {
    private let storage = Mutex<(any AnyObject & Sendable)?>(nil)

    package init() {}

    /// The decoded form of type `Decoded`, made by `decode` the first time.
    package func value<Decoded: AnyObject & Sendable>(
        as type: Decoded.Type, decode: () -> Decoded?
    ) -> Decoded? {
        storage.withLock { stored in
            if let existing = stored as? Decoded { return existing }
            let made = decode()
            if let made { stored = made }
            return made
        }
    }
}

/// Channel bindings (RFC 5056) a connection can produce.
public enum TLSChannelBinding: Sendable, Hashable {
    /// RFC 9266 `tls-exporter`: 32 bytes exported with label `EXPORTER-Channel-Binding`.
    /// TLS 1.3 only.
    case tlsExporter
    /// RFC 5929 `tls-server-end-point`: the hash of the server's certificate (SHA-256 for
    /// certificates signed with MD5, SHA-1 or SHA-256; otherwise the signature's hash).
    case tlsServerEndPoint
}

/// A hash algorithm the backends compute for TLSKit.
package enum TLSHashAlgorithm: Sendable {
    case sha256, sha384, sha512
}

/// Lower-case hex.
package enum TLSHex {
    package static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// The little DER reading TLSKit needs itself: a certificate's signature algorithm.
package enum TLSDER {
    /// The hash of a certificate's signature algorithm, for `tls-server-end-point`.
    package static func serverEndPointHash(certificate der: [UInt8]) -> TLSHashAlgorithm {
        guard let oid = signatureAlgorithmOID(der) else { return .sha256 }
        switch oid {
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C],  // sha384WithRSAEncryption
             [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]:        // ecdsa-with-SHA384
            return .sha384
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D],  // sha512WithRSAEncryption
             [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04]:        // ecdsa-with-SHA512
            return .sha512
        default:
            return .sha256  // MD5, SHA-1, SHA-256 and anything else (RFC 5929 §4.1)
        }
    }

    /// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, … }, … }
    static func signatureAlgorithmOID(_ der: [UInt8]) -> [UInt8]? {
        var index = 0
        guard let outer = header(der, &index, tag: 0x30) else { return nil }
        _ = outer
        guard let tbs = header(der, &index, tag: 0x30) else { return nil }
        index += tbs
        guard header(der, &index, tag: 0x30) != nil, let oidLength = header(der, &index, tag: 0x06),
              index + oidLength <= der.count else { return nil }
        return Array(der[index..<index + oidLength])
    }

    /// Reads a tag and length at `index`, leaves `index` at the contents; nil if malformed.
    private static func header(_ der: [UInt8], _ index: inout Int, tag: UInt8) -> Int? {
        guard index + 2 <= der.count, der[index] == tag else { return nil }
        var length = Int(der[index + 1])
        index += 2
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count > 0, count <= 4, index + count <= der.count else { return nil }
            length = der[index..<index + count].reduce(0) { $0 << 8 | Int($1) }
            index += count
        }
        return index + length <= der.count ? length : nil
    }
}
