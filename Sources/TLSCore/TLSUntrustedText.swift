/// Text that came from the peer (names in its certificate, alert text) made safe to show:
/// the one place where TLSKit turns untrusted bytes into text and escapes them.
///
/// A hostile peer controls every string in its certificate. Shown raw, a NUL can cut a
/// log line, and an ESC sequence can rewrite what a terminal displays. So every such
/// string in a ``TLSError`` message, in ``TLSCertificateInfo/description`` and in
/// `tlsctl`'s output goes through ``escape(_:)-(String)``:
///
/// - control characters U+0000–U+001F, DEL U+007F and the C1 controls U+0080–U+009F
///   become `\xNN`, one escape per UTF-8 byte (`\x00`, `\x1b`, `\x7f`, `\xc2\x9b`);
/// - bytes that are not valid UTF-8 become `\xNN` when the text is decoded from bytes
///   (``decode(_:)``), so they are never lost to U+FFFD and never reach a terminal raw;
/// - everything else, including a backslash, is kept as it is, so escaping is idempotent
///   (escaping escaped text changes nothing) and RFC 4514 names stay readable.
///
/// ```swift
/// TLSUntrustedText.escape("good.example\u{0}.evil\u{1B}[2J")  // good.example\x00.evil\x1b[2J
/// ```
public enum TLSUntrustedText {
    /// The text with every control character (C0, DEL, C1) written as `\xNN` per UTF-8 byte.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                for byte in String(scalar).utf8 { result += hex(byte) }
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Bytes from the peer as displayable text: ``decode(_:)`` then ``escape(_:)-(String)``.
    public static func escape<Bytes: Collection>(bytes: Bytes) -> String where Bytes.Element == UInt8 {
        escape(decode(bytes))
    }

    /// Bytes from the peer as text: valid UTF-8 is decoded as it is (control characters
    /// included: the value is kept, ``escape(_:)-(String)`` is for showing it), and every
    /// byte of an invalid UTF-8 sequence becomes the four characters `\xNN`.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let bytes = Array(bytes)
        if let valid = String(validating: bytes, as: UTF8.self) { return valid }
        var result = ""
        var index = 0
        while index < bytes.count {
            if let (scalar, length) = scalar(in: bytes, at: index) {
                result.unicodeScalars.append(scalar)
                index += length
            } else {
                result += hex(bytes[index])
                index += 1
            }
        }
        return result
    }

    /// The well-formed UTF-8 scalar starting at `index` (no overlong form, no surrogate,
    /// at most U+10FFFF) and its length; nil when the byte there does not start one.
    private static func scalar(in bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[index]
        let length: Int, minimum: UInt32
        var value: UInt32
        switch lead {
        case 0x00...0x7F: return (Unicode.Scalar(lead), 1)
        case 0xC2...0xDF: length = 2; minimum = 0x80; value = UInt32(lead & 0x1F)
        case 0xE0...0xEF: length = 3; minimum = 0x800; value = UInt32(lead & 0x0F)
        case 0xF0...0xF4: length = 4; minimum = 0x10000; value = UInt32(lead & 0x07)
        default: return nil
        }
        guard index + length <= bytes.count else { return nil }
        for offset in 1..<length {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, length)
    }

    /// True for a scalar that must never reach a terminal raw.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]],
                      as: UTF8.self)
    }
}
