/// What ``TLSPeerPolicy`` reads from the peer's leaf certificate: the names it is valid
/// for and where its public key is, read straight from the DER.
///
/// Both backends hand the policy the leaf's DER once their library has parsed it (and,
/// unless pins replace chain verification, verified its chain), so this reader never
/// sees bytes the library rejected; it still refuses anything that is not well-formed
/// DER, and the policy then fails the handshake. Reading the few fields needed here
/// costs a few microseconds, where importing the certificate again into the library's
/// own X.509 structures cost 4% of a GnuTLS handshake.
@_spi(TLSBackendImplementation) public struct TLSLeafIdentity: Sendable {
    /// The first common name (OID 2.5.4.3) of the subject, if any.
    @_spi(TLSBackendImplementation) public var commonName: String?
    /// dNSName entries of the subjectAltName extension, as written (never cut at a NUL).
    @_spi(TLSBackendImplementation) public var dnsNames: [String] = []
    /// iPAddress entries of the subjectAltName extension, in text form.
    @_spi(TLSBackendImplementation) public var ipAddresses: [String] = []
    /// Where the SubjectPublicKeyInfo (tag and length included) is in the DER.
    @_spi(TLSBackendImplementation) public var subjectPublicKeyInfo: Range<Int>
    /// notBefore and notAfter, seconds since 1970 (UTC); nil when a time is not in the
    /// RFC 5280 form (`…Z` with seconds), which only the reload check needs: the
    /// libraries judge a peer's dates themselves.
    @_spi(TLSBackendImplementation) public var validity: ClosedRange<Int64>?

    /// Reads a DER certificate; nil when it is not a well-formed X.509 certificate.
    @_spi(TLSBackendImplementation) public init?(der: UnsafeRawBufferPointer) {
        do { self = try Self.read(der) } catch { return nil }
    }

    private init(subjectPublicKeyInfo: Range<Int>) { self.subjectPublicKeyInfo = subjectPublicKeyInfo }

    private struct Malformed: Error {}

    private static func read(_ der: UnsafeRawBufferPointer) throws -> TLSLeafIdentity {
        var top = DERReader(der, der.indices)
        let certificate = try top.expect(DERReader.sequence)
        if try top.next() != nil { throw Malformed() }                   // nothing after it
        var fields = top.reader(certificate.content)
        var tbs = fields.reader(try fields.expect(DERReader.sequence).content)
        var element = try tbs.next()
        if element?.tag == 0xA0 { element = try tbs.next() }              // [0] version
        guard element?.tag == 0x02 else { throw Malformed() }             // serialNumber
        _ = try tbs.expect(DERReader.sequence)                            // signature
        _ = try tbs.expect(DERReader.sequence)                            // issuer
        let validity = try tbs.expect(DERReader.sequence)
        let subject = try tbs.expect(DERReader.sequence)
        let key = try tbs.expect(DERReader.sequence)
        var identity = TLSLeafIdentity(subjectPublicKeyInfo: key.whole)
        var times = tbs.reader(validity.content)
        if let start = try? times.expect(anyOf: [0x17, 0x18]), let end = try? times.expect(anyOf: [0x17, 0x18]),
           let notBefore = try? time(times, start), let notAfter = try? time(times, end), notBefore <= notAfter {
            identity.validity = notBefore...notAfter                      // UTCTime or GeneralizedTime
        }
        identity.commonName = try firstCommonName(tbs.reader(subject.content))
        while let optional = try tbs.next() {                             // [1], [2], [3] extensions
            guard optional.tag == 0xA3 else { continue }
            var wrapper = tbs.reader(optional.content)
            var extensions = wrapper.reader(try wrapper.expect(DERReader.sequence).content)
            while let item = try extensions.next() {
                guard item.tag == DERReader.sequence else { throw Malformed() }
                var parts = extensions.reader(item.content)
                let oid = try parts.expect(0x06)
                var value = try parts.next()
                if value?.tag == 0x01 { value = try parts.next() }        // critical
                guard let value, value.tag == 0x04 else { throw Malformed() }
                if parts.bytes(oid.content).elementsEqual([0x55, 0x1D, 0x11]) {   // 2.5.29.17
                    try identity.readSubjectAltNames(parts.reader(value.content))
                }
            }
        }
        return identity
    }

    /// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049, RFC 5280 §4.1.2.5.1) or GeneralizedTime
    /// (`YYYYMMDDHHMMSSZ`) as seconds since 1970.
    private static func time(_ reader: DERReader, _ element: (tag: UInt8, content: Range<Int>, whole: Range<Int>)) throws -> Int64 {
        let text = Array(reader.bytes(element.content))
        let digits = element.tag == 0x17 ? 12 : 14
        guard text.count == digits + 1, text.last == UInt8(ascii: "Z"),
              text.dropLast().allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { throw Malformed() }
        func number(_ start: Int, _ count: Int) -> Int64 {
            text[start..<start + count].reduce(0) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
        }
        var year: Int64, index: Int
        if element.tag == 0x17 {
            year = number(0, 2)
            year += year < 50 ? 2000 : 1900
            index = 2
        } else {
            year = number(0, 4)
            index = 4
        }
        let (month, day) = (number(index, 2), number(index + 2, 2))
        let (hour, minute, second) = (number(index + 4, 2), number(index + 6, 2), number(index + 8, 2))
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { throw Malformed() }
        // Days from the civil date (Howard Hinnant's algorithm), then seconds.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }

    /// GeneralNames: dNSName [2] IA5String and iPAddress [7] OCTET STRING; others skipped.
    private mutating func readSubjectAltNames(_ reader: DERReader) throws {
        var outer = reader
        var entries = outer.reader(try outer.expect(DERReader.sequence).content)
        while let entry = try entries.next() {
            let bytes = entries.bytes(entry.content)
            switch entry.tag {
            case 0x82: dnsNames.append(TLSUntrustedText.decode(bytes))
            case 0x87:
                // 4 or 16 bytes; another length names no address and is skipped, as
                // both libraries' parsers do.
                if let text = TLSHostName.ipAddressText(Array(bytes)) { ipAddresses.append(text) }
            default: continue
            }
        }
    }

    /// The value of the first CN in a Name (SEQUENCE OF SET OF AttributeTypeAndValue), nil
    /// when there is none.
    private static func firstCommonName(_ reader: DERReader) throws -> String? {
        var relativeNames = reader
        while let set = try relativeNames.next() {
            guard set.tag == 0x31 else { throw Malformed() }
            var attributes = relativeNames.reader(set.content)
            while let attribute = try attributes.next() {
                guard attribute.tag == DERReader.sequence else { throw Malformed() }
                var parts = attributes.reader(attribute.content)
                let type = try parts.expect(0x06)
                guard let value = try parts.next() else { throw Malformed() }
                if parts.bytes(type.content).elementsEqual([0x55, 0x04, 0x03]) {
                    return decodeString(tag: value.tag, parts.bytes(value.content))
                }
            }
        }
        return nil
    }

    /// A directory string as text, as libcrypto's `ASN1_STRING_to_UTF8` converts it.
    private static func decodeString(tag: UInt8, _ bytes: UnsafeRawBufferPointer) -> String {
        switch tag {
        case 0x1E: // BMPString: UTF-16BE
            let units = stride(from: 0, to: bytes.count - 1, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            return String(decoding: units, as: UTF16.self)
        case 0x1C: // UniversalString: UTF-32BE
            var scalars = String.UnicodeScalarView()
            for offset in stride(from: 0, to: bytes.count - 3, by: 4) {
                var value: UInt32 = 0
                for byte in bytes[offset..<offset + 4] { value = value << 8 | UInt32(byte) }
                scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            }
            return String(scalars)
        case 0x14: // T61String, read as Latin-1 (as libcrypto does)
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        default:   // UTF8String, PrintableString, IA5String, … (invalid UTF-8 kept as `\xNN`)
            return TLSUntrustedText.decode(bytes)
        }
    }
}
