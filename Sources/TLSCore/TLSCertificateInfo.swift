#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What TLSKit reads from an X.509 certificate, the same on every backend.
public struct TLSCertificateInfo: Sendable, Hashable {
    /// The subject, RFC 4514 style (`CN=localhost,O=Example`).
    public var subject: String
    /// The issuer, RFC 4514 style.
    public var issuer: String
    /// The subject's common name, if any (the first `CN`).
    public var commonName: String?
    /// DNS names from the subjectAltName extension, as written (bytes that are not UTF-8
    /// as `\xNN`, ``TLSUntrustedText/decode(_:)``). Peer-controlled: show them through
    /// ``description`` or ``TLSUntrustedText/escape(_:)-(String)``.
    public var dnsNames: [String]
    /// IP addresses from the subjectAltName extension, in text form (`127.0.0.1`, `::1`).
    public var ipAddresses: [String]
    /// Start of validity, seconds since 1970-01-01 UTC.
    public var notValidBefore: Int64
    /// End of validity, seconds since 1970-01-01 UTC.
    public var notValidAfter: Int64
    /// The serial number, lower-case hex.
    public var serialNumber: String
    /// SHA-256 of the whole certificate (DER): the usual fingerprint.
    public var sha256Fingerprint: [UInt8]
    /// SHA-256 of the SubjectPublicKeyInfo (DER): what public-key pinning compares (RFC 7469).
    public var spkiSHA256: [UInt8]

    /// Creates a value; backends fill it from their parser.
    public init(subject: String, issuer: String, commonName: String?, dnsNames: [String], ipAddresses: [String],
                notValidBefore: Int64, notValidAfter: Int64, serialNumber: String,
                sha256Fingerprint: [UInt8], spkiSHA256: [UInt8]) {
        self.subject = subject
        self.issuer = issuer
        self.commonName = commonName
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        self.notValidBefore = notValidBefore
        self.notValidAfter = notValidAfter
        self.serialNumber = serialNumber
        self.sha256Fingerprint = sha256Fingerprint
        self.spkiSHA256 = spkiSHA256
    }

    /// The fingerprint as colon-separated upper-case hex, as `openssl x509 -fingerprint` prints it.
    public var sha256FingerprintText: String {
        sha256Fingerprint.map { String(format2: $0) }.joined(separator: ":")
    }
}

extension TLSCertificateInfo: CustomStringConvertible {
    /// One line naming the certificate: subject, SANs, issuer and fingerprint, with every
    /// peer-controlled string escaped (``TLSUntrustedText``), safe for logs and terminals.
    public var description: String {
        let names = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
        let text = "subject \(subject); SANs \(names.isEmpty ? "none" : names.joined(separator: ", ")); "
            + "issuer \(issuer); SHA-256 \(sha256FingerprintText)"
        return TLSUntrustedText.escape(text)
    }
}

extension String {
    /// Two upper-case hex digits.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789ABCDEF")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
