/// TLS wire knowledge written once for every backend: record and handshake-message
/// headers, alert records, and the ClientHello extensions TLSKit reads itself.
///
/// Pure Swift over bytes, no C library. The rules are those of RFC 8446 §5.1/§5.2 and
/// RFC 5246 §6.2; where an RFC leaves a choice, the alert is the one OpenSSL 3.0 sends
/// for the same input, so that a peer sees the same alert from either backend.
@_spi(TLSBackendImplementation) public enum TLSWire {
    /// The record content types (RFC 8446 §5.1; 24 is heartbeat, RFC 6520).
    public enum ContentType: UInt8, Sendable {
        case changeCipherSpec = 20
        case alert = 21
        case handshake = 22
        case applicationData = 23
        case heartbeat = 24
    }

    /// The length of a record header: type (1), legacy_record_version (2), length (2).
    public static let recordHeaderLength = 5
    /// The largest TLSPlaintext fragment: 2^14 (RFC 8446 §5.1, RFC 5246 §6.2.1).
    public static let maxPlaintextLength = 1 << 14
    /// The largest TLS 1.3 TLSCiphertext fragment: 2^14 + 256 (RFC 8446 §5.2).
    public static let maxTLS13CiphertextLength = (1 << 14) + 256
    /// The largest TLS 1.2 TLSCiphertext fragment: 2^14 + 2048 (RFC 5246 §6.2.3), the
    /// largest record any version allows.
    public static let maxCiphertextLength = (1 << 14) + 2048
    /// The largest handshake message either library accepts (GnuTLS buffers at most
    /// 128 KiB of handshake data; OpenSSL's largest limit, for a ClientHello, is close).
    /// A header that declares more can never be answered: it is refused at once.
    public static let maxHandshakeMessageLength = 1 << 17

    /// Handshake message types in use (RFC 8446 §4, RFC 5246 §7.4, RFC 6066 §8
    /// certificate_status, RFC 8879 compressed_certificate, 254 message_hash).
    public static let knownHandshakeTypes: Set<UInt8> = [0, 1, 2, 4, 5, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 24, 25, 254]

    /// The handshake type of a ServerHello.
    public static let serverHelloType: UInt8 = 2
    /// The ServerHello.random that marks a HelloRetryRequest (RFC 8446 §4.1.3).
    public static let helloRetryRequestRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]
    /// Extension numbers TLSKit reads.
    public static let alpnExtension: UInt16 = 16
    public static let supportedVersionsExtension: UInt16 = 43

    /// A record header, as read.
    public struct RecordHeader: Equatable, Sendable {
        public var type: UInt8
        public var version: UInt16
        public var length: Int
        /// A header with these fields.
        public init(type: UInt8, version: UInt16, length: Int) {
            self.type = type
            self.version = version
            self.length = length
        }
    }

    /// Reads a record header from the first 5 bytes; nil with fewer.
    public static func recordHeader<Bytes: Collection>(_ bytes: Bytes) -> RecordHeader? where Bytes.Element == UInt8 {
        // Read through the collection's indices: no array copy of the 5 bytes.
        var value: UInt64 = 0
        var count = 0
        for byte in bytes.prefix(recordHeaderLength) {
            value = value << 8 | UInt64(byte)
            count += 1
        }
        guard count == recordHeaderLength else { return nil }
        return RecordHeader(type: UInt8(truncatingIfNeeded: value >> 32), version: UInt16(truncatingIfNeeded: value >> 16),
                            length: Int(value & 0xFFFF))
    }

    /// The record header rules: a known content type, a legacy_record_version of major
    /// 3 (0x0300…0x0304: the first ClientHello may carry 0x0301, later records 0x0303),
    /// and a length within `maxLength` (``maxPlaintextLength`` for an unprotected record,
    /// ``maxCiphertextLength`` or ``maxTLS13CiphertextLength`` for a protected one).
    /// - Returns: nil when valid, else the violation with the alert to send.
    public static func validate(_ header: RecordHeader, maxLength: Int = maxCiphertextLength) -> TLSWireViolation? {
        guard ContentType(rawValue: header.type) != nil else {
            return TLSWireViolation(.unexpectedMessage, "a record of unknown content type \(header.type)")
        }
        guard header.version >> 8 == 3, header.version & 0xFF <= 4 else {
            return TLSWireViolation(.protocolVersion, "a record with version 0x\(hex(header.version)), not a TLS record version")
        }
        guard header.length <= maxLength else {
            return TLSWireViolation(.recordOverflow, "a record of \(header.length) bytes, over the limit of \(maxLength)")
        }
        return nil
    }

    /// The handshake message header rules: a known type and a length under
    /// ``maxHandshakeMessageLength``. - Returns: nil when valid, else the violation.
    public static func validateHandshakeHeader(type: UInt8, length: Int) -> TLSWireViolation? {
        guard knownHandshakeTypes.contains(type) else {
            return TLSWireViolation(.unexpectedMessage, "a handshake message of unknown type \(type)")
        }
        guard length <= maxHandshakeMessageLength else {
            return TLSWireViolation(.illegalParameter,
                "a handshake message of type \(type) declaring \(length) bytes, over the limit of \(maxHandshakeMessageLength)")
        }
        return nil
    }

    /// An unprotected alert record: type 21, version 0x0303, length 2, level, description.
    public static func alertRecord(_ alert: TLSAlert, fatal: Bool = true) -> [UInt8] {
        [ContentType.alert.rawValue, 0x03, 0x03, 0x00, 0x02, fatal ? 2 : 1, alert.rawValue]
    }

    /// Reads one unprotected alert record at the start of `bytes`: (level, alert), or
    /// nil when the bytes do not start with a complete 2-byte alert record.
    public static func plaintextAlert<Bytes: Collection>(_ bytes: Bytes) -> (level: UInt8, alert: TLSAlert)?
    where Bytes.Element == UInt8 {
        let b = Array(bytes.prefix(recordHeaderLength + 2))
        guard b.count == 7, b[0] == ContentType.alert.rawValue, b[1] == 3, b[3] == 0, b[4] == 2 else { return nil }
        return (b[5], TLSAlert(b[6]))
    }

    /// A ProtocolNameList body as OpenSSL's ALPN callback hands it (length-prefixed
    /// names, without the 2-byte list length): the names, or nil when malformed (an
    /// empty name, or a name running past the end).
    public static func protocolNames(_ bytes: UnsafeRawBufferPointer) -> [String]? {
        var names: [String] = []
        var index = 0
        while index < bytes.count {
            let length = Int(bytes[index])
            guard length > 0, index + 1 + length <= bytes.count else { return nil }
            names.append(String(decoding: bytes[(index + 1)..<(index + 1 + length)], as: UTF8.self))
            index += 1 + length
        }
        return names
    }

    /// The body of an ALPN extension (2-byte list length, then the list): the names, or
    /// nil when malformed.
    public static func alpnExtension(_ bytes: UnsafeRawBufferPointer) -> [String]? {
        guard bytes.count >= 2 else { return nil }
        let length = Int(bytes[0]) << 8 | Int(bytes[1])
        guard 2 + length == bytes.count else { return nil }
        return protocolNames(UnsafeRawBufferPointer(rebasing: bytes[2...]))
    }

    /// The body of a ClientHello supported_versions extension (1-byte list length, then
    /// 2-byte versions): the versions, or nil when malformed.
    public static func supportedVersions(_ bytes: UnsafeRawBufferPointer) -> [UInt16]? {
        guard bytes.count >= 1 else { return nil }
        let length = Int(bytes[0])
        guard length % 2 == 0, 1 + length == bytes.count else { return nil }
        return stride(from: 1, to: 1 + length, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
    }

    /// What a server needs from a ClientHello body (the handshake message without its
    /// 4-byte header): the legacy version, the cipher suites, and the extensions TLSKit
    /// reads itself (versions, ALPN, server name, signature algorithms, groups).
    public struct ClientHello: Equatable, Sendable {
        /// legacy_version.
        public var legacyVersion: UInt16
        /// supported_versions, when the extension is present.
        public var supportedVersions: [UInt16]?
        /// ALPN protocol names, when the extension is present.
        public var applicationProtocols: [String]?
        /// cipher_suites, in the client's order.
        public var cipherSuites: [UInt16] = []
        /// The host_name of server_name (RFC 6066), when the extension is present.
        public var serverName: String?
        /// signature_algorithms (RFC 8446 §4.2.3), when the extension is present.
        public var signatureSchemes: [UInt16]?
        /// supported_groups (RFC 8446 §4.2.7), when the extension is present.
        public var supportedGroups: [UInt16]?

        /// A ClientHello summary with these fields.
        public init(legacyVersion: UInt16, supportedVersions: [UInt16]? = nil, applicationProtocols: [String]? = nil) {
            self.legacyVersion = legacyVersion
            self.supportedVersions = supportedVersions
            self.applicationProtocols = applicationProtocols
        }

        /// True when the client can speak a version in `range` (without
        /// supported_versions, every version up to legacy_version, RFC 8446 §4.2.1).
        public func offersVersion(in range: ClosedRange<UInt16>) -> Bool {
            if let supportedVersions { return supportedVersions.contains { range.contains($0) } }
            return legacyVersion >= range.lowerBound
        }
    }

    /// server_name's extension type (RFC 6066).
    public static let serverNameExtension: UInt16 = 0
    /// supported_groups' extension type.
    public static let supportedGroupsExtension: UInt16 = 10
    /// signature_algorithms' extension type.
    public static let signatureAlgorithmsExtension: UInt16 = 13

    /// Parses a ClientHello body; nil when malformed (including a malformed extension
    /// that TLSKit reads, or one of them twice).
    public static func clientHello(_ body: UnsafeRawBufferPointer) -> ClientHello? {
        var reader = Reader(body)
        guard let version = reader.uint16(), reader.skip(32),      // legacy_version, random
              let sessionID = reader.uint8(), reader.skip(Int(sessionID)),
              let suitesLength = reader.uint16(), suitesLength % 2 == 0, let suites = reader.bytes(Int(suitesLength)),
              let compressions = reader.uint8(), reader.skip(Int(compressions))
        else { return nil }
        var hello = ClientHello(legacyVersion: version)
        hello.cipherSuites = stride(from: 0, to: suites.count, by: 2).map { UInt16(suites[$0]) << 8 | UInt16(suites[$0 + 1]) }
        if reader.isAtEnd { return hello }
        guard let extensions = extensions(&reader) else { return nil }
        var seen = Set<UInt16>()
        for (type, data) in extensions {
            guard seen.insert(type).inserted else { return nil }   // RFC 8446 §4.2: at most once
            switch type {
            case supportedVersionsExtension:
                guard let versions = data.withUnsafeBytes({ supportedVersions($0) }) else { return nil }
                hello.supportedVersions = versions
            case alpnExtension:
                guard let names = data.withUnsafeBytes({ alpnExtension($0) }) else { return nil }
                hello.applicationProtocols = names
            case serverNameExtension:
                guard let name = data.withUnsafeBytes({ serverName($0) }) else { return nil }
                hello.serverName = name
            case signatureAlgorithmsExtension:
                guard let schemes = data.withUnsafeBytes({ uint16List($0) }) else { return nil }
                hello.signatureSchemes = schemes
            case supportedGroupsExtension:
                guard let groups = data.withUnsafeBytes({ uint16List($0) }) else { return nil }
                hello.supportedGroups = groups
            default:
                break
            }
        }
        return hello
    }

    /// A list of 2-byte values behind a 2-byte length (signature_algorithms,
    /// supported_groups); nil when malformed or empty.
    static func uint16List(_ bytes: UnsafeRawBufferPointer) -> [UInt16]? {
        var reader = Reader(bytes)
        guard let length = reader.uint16(), length > 0, length % 2 == 0, let list = reader.bytes(Int(length)), reader.isAtEnd
        else { return nil }
        return stride(from: 0, to: list.count, by: 2).map { UInt16(list[$0]) << 8 | UInt16(list[$0 + 1]) }
    }

    /// The host_name in a server_name extension body (a 2-byte list length, then
    /// entries of type, 2-byte length, name); nil when malformed. An empty extension
    /// (a server's acknowledgement) has no name: nil too, as it never comes from a client.
    static func serverName(_ bytes: UnsafeRawBufferPointer) -> String? {
        var reader = Reader(bytes)
        guard let length = reader.uint16(), length > 0, let list = reader.bytes(Int(length)), reader.isAtEnd else { return nil }
        return list.withUnsafeBytes { raw -> String? in
            var entries = Reader(raw)
            var hostName: String?
            while !entries.isAtEnd {
                guard let type = entries.uint8(), let nameLength = entries.uint16(), nameLength > 0,
                      let name = entries.bytes(Int(nameLength)) else { return nil }
                // RFC 6066 §3: one name of each type; host_name (0) is the only type.
                if type == 0 {
                    guard hostName == nil, !name.contains(0) else { return nil }   // a NUL: refused, as by OpenSSL
                    hostName = String(decoding: name, as: UTF8.self)   // untrusted: escape before printing
                }
            }
            return hostName
        }
    }

    /// What the client's wire reader needs from a ServerHello body: whether it is a
    /// HelloRetryRequest, and the selected version (supported_versions, else
    /// legacy_version). Nil when malformed.
    public static func serverHello(_ body: UnsafeRawBufferPointer) -> (isHelloRetryRequest: Bool, version: UInt16)? {
        var reader = Reader(body)
        guard let legacy = reader.uint16(), let random = reader.bytes(32),
              let sessionID = reader.uint8(), reader.skip(Int(sessionID)), reader.skip(3)  // cipher, compression
        else { return nil }
        let isHRR = random == helloRetryRequestRandom
        if reader.isAtEnd { return (isHRR, legacy) }
        guard let extensions = extensions(&reader) else { return nil }
        for (type, data) in extensions where type == supportedVersionsExtension {
            guard data.count == 2 else { return nil }
            return (isHRR, UInt16(data[0]) << 8 | UInt16(data[1]))
        }
        return (isHRR, legacy)
    }

    /// The extensions block: a 2-byte total length, then (type, 2-byte length, data).
    private static func extensions(_ reader: inout Reader) -> [(UInt16, [UInt8])]? {
        guard let total = reader.uint16(), let block = reader.bytes(Int(total)), reader.isAtEnd else { return nil }
        var result: [(UInt16, [UInt8])] = []
        return block.withUnsafeBytes { raw -> [(UInt16, [UInt8])]? in
            var inner = Reader(raw)
            while !inner.isAtEnd {
                guard let type = inner.uint16(), let length = inner.uint16(), let data = inner.bytes(Int(length)) else { return nil }
                result.append((type, data))
            }
            return result
        }
    }

    /// A bounds-checked cursor over bytes.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
        var isAtEnd: Bool { index == bytes.count }
        mutating func uint8() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }
        mutating func uint16() -> UInt16? {
            guard let high = uint8(), let low = uint8() else { return nil }
            return UInt16(high) << 8 | UInt16(low)
        }
        mutating func skip(_ count: Int) -> Bool {
            guard count <= bytes.count - index else { return false }
            index += count
            return true
        }
        mutating func bytes(_ count: Int) -> [UInt8]? {
            guard count <= bytes.count - index else { return nil }
            defer { index += count }
            return Array(bytes[index..<(index + count)])
        }
    }

    private static func hex(_ value: UInt16) -> String {
        let digits = Array("0123456789abcdef")
        return String((0..<4).reversed().map { digits[Int(value >> (UInt16($0) * 4) & 0xF)] })
    }
}

/// Bytes from the peer that can never form a valid record or message, found by the
/// wire reader: the connection fails with ``TLSError/Code/protocolFailure`` and
/// ``alert`` is sent.
@_spi(TLSBackendImplementation) public struct TLSWireViolation: Equatable, Sendable {
    /// The fatal alert to send (the one OpenSSL 3.0 sends for the same input).
    public let alert: TLSAlert
    /// What was wrong, for ``TLSError/message``.
    public let reason: String

    public init(_ alert: TLSAlert, _ reason: String) {
        self.alert = alert
        self.reason = reason
    }
}
