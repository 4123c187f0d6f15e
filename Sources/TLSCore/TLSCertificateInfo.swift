#if canImport(Glibc)
import Glibc
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

extension TLSHostName {
    /// The text form of a 4- or 16-byte address.
    package static func ipAddressText(_ bytes: [UInt8]) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : bytes.count == 16 ? AF_INET6 : -1
        guard family != -1 else { return nil }
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard ok != nil else { return nil }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// RFC 6125 identity check, the one rule both backends apply:
    /// - an IP literal matches IP SANs only, compared as addresses (never DNS names or CN);
    /// - a DNS name matches DNS SANs; the CN is consulted only when the certificate has no
    ///   SAN of either kind;
    /// - ASCII case-insensitive, a trailing dot on either side ignored;
    /// - a wildcard is only the whole left-most label (`*.example.com`), matches exactly one
    ///   non-empty label, and needs at least two labels after it (`*.com`, `*.local` never
    ///   match); partial-label wildcards (`f*.example.com`, `*x.example.com`) never match,
    ///   and a wildcard never matches an IDNA A-label (`xn--…`).
    package static func matches(_ name: String, leaf: TLSLeafIdentity) -> Bool {
        if let address = ipAddressBytes(name) {
            return leaf.ipAddresses.contains { ipAddressBytes($0) == address }
        }
        let host = normalised(verificationName(name))
        guard !host.isEmpty else { return false }
        if !leaf.dnsNames.isEmpty || !leaf.ipAddresses.isEmpty {
            return leaf.dnsNames.contains { pattern($0, matches: host) }
        }
        guard let commonName = leaf.commonName, ipAddressBytes(commonName) == nil else { return false }
        return pattern(commonName, matches: host)
    }

    private static func normalised(_ name: String) -> String {
        let lower = String(name.lowercased())
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }

    /// One presented identifier against the reference host name (already normalised).
    static func pattern(_ presented: String, matches host: String) -> Bool {
        let pattern = normalised(presented)
        // A backslash is never in a DNS name; in a decoded name it stands for a byte that
        // was not UTF-8 (`\xNN`), which must not match a host name spelled that way.
        guard !pattern.isEmpty, pattern.allSatisfy({ $0.isASCII }), !pattern.contains("\\") else { return false }
        if !pattern.contains("*") { return pattern == host }
        let patternLabels = pattern.split(separator: ".", omittingEmptySubsequences: false)
        let hostLabels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard patternLabels.first == "*",
              patternLabels.dropFirst().allSatisfy({ !$0.contains("*") && !$0.isEmpty }),
              patternLabels.count >= 3,
              hostLabels.count == patternLabels.count,
              let first = hostLabels.first, !first.isEmpty, !first.hasPrefix("xn--")
        else { return false }
        return Array(hostLabels.dropFirst()) == Array(patternLabels.dropFirst())
    }
}
