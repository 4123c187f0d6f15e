// TLSKit's one DER reader: the few certificate fields the core reads itself (the leaf's
// names and public key for TLSPeerPolicy, the signature algorithm for
// tls-server-end-point). Everything else about certificates is the library's job.

/// Walks DER tag-length-value elements (definite lengths, single-byte tags) inside a range.
struct DERReader {
    static let sequence: UInt8 = 0x30

    private let buffer: UnsafeRawBufferPointer
    private var index: Int
    private let end: Int

    init(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) {
        self.buffer = buffer
        self.index = range.lowerBound
        self.end = range.upperBound
    }

    struct Malformed: Error {}

    /// The next element: its tag, content range and whole range; nil at the end. Throws on
    /// anything but well-formed DER (a truncated element, a length past the end).
    mutating func next() throws -> (tag: UInt8, content: Range<Int>, whole: Range<Int>)? {
        if index == end { return nil }
        let start = index
        guard end - index >= 2, buffer[index] & 0x1F != 0x1F else { throw Malformed() }
        let tag = buffer[index]
        var cursor = index + 1
        let first = buffer[cursor]
        cursor += 1
        var length = Int(first)
        if first >= 0x80 {
            let count = Int(first & 0x7F)
            guard (1...3).contains(count), end - cursor >= count else { throw Malformed() }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(buffer[cursor])
                cursor += 1
            }
        }
        guard length <= end - cursor else { throw Malformed() }
        index = cursor + length
        return (tag, cursor..<index, start..<index)
    }

    /// The next element, which must exist and have this tag.
    mutating func expect(_ tag: UInt8) throws -> (tag: UInt8, content: Range<Int>, whole: Range<Int>) {
        guard let element = try next(), element.tag == tag else { throw Malformed() }
        return element
    }

    /// The next element, which must exist and have one of these tags.
    mutating func expect(anyOf tags: [UInt8]) throws -> (tag: UInt8, content: Range<Int>, whole: Range<Int>) {
        guard let element = try next(), tags.contains(element.tag) else { throw Malformed() }
        return element
    }

    func reader(_ range: Range<Int>) -> DERReader { DERReader(buffer, range) }

    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[range]) }
}

/// What TLSKit reads from a certificate's outer structure.
enum TLSDER {
    /// The hash of a certificate's signature algorithm, for `tls-server-end-point`
    /// (RFC 5929 §4.1: SHA-256 for MD5, SHA-1, SHA-256 and anything unknown).
    static func serverEndPointHash(certificate der: [UInt8]) -> TLSHashAlgorithm {
        guard let oid = signatureAlgorithmOID(der) else { return .sha256 }
        switch oid {
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C],  // sha384WithRSAEncryption
             [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]:        // ecdsa-with-SHA384
            return .sha384
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D],  // sha512WithRSAEncryption
             [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04]:        // ecdsa-with-SHA512
            return .sha512
        default:
            return .sha256
        }
    }

    /// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, … }, … }
    static func signatureAlgorithmOID(_ der: [UInt8]) -> [UInt8]? {
        der.withUnsafeBytes { buffer -> [UInt8]? in
            var top = DERReader(buffer, buffer.indices)
            guard let certificate = try? top.expect(DERReader.sequence) else { return nil }
            var fields = top.reader(certificate.content)
            guard (try? fields.expect(DERReader.sequence)) != nil,                  // tbsCertificate
                  let algorithm = try? fields.expect(DERReader.sequence) else { return nil }
            var parts = fields.reader(algorithm.content)
            guard let oid = try? parts.expect(0x06) else { return nil }
            return Array(parts.bytes(oid.content))
        }
    }
}
