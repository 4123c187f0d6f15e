#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Host-name rules that do not depend on the backend.
@_spi(TLSBackendImplementation) public enum TLSHostName {
    /// True for an IPv4 or IPv6 address literal (IPv6 possibly in brackets).
    @_spi(TLSBackendImplementation) public static func isIPAddress(_ name: String) -> Bool {
        ipAddressBytes(name) != nil
    }

    /// The address bytes (4 or 16) of an IP literal, or nil.
    @_spi(TLSBackendImplementation) public static func ipAddressBytes(_ name: String) -> [UInt8]? {
        var text = name
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// The name as sent in SNI: nil for IP literals (RFC 6066 §3 forbids them), no
    /// trailing dot.
    @_spi(TLSBackendImplementation) public static func sniName(_ name: String?) -> String? {
        guard let name, !name.isEmpty, !isIPAddress(name) else { return nil }
        return name.hasSuffix(".") ? String(name.dropLast()) : name
    }

    /// The name as given to the certificate checker: brackets and a trailing dot removed.
    @_spi(TLSBackendImplementation) public static func verificationName(_ name: String) -> String {
        if name.hasPrefix("["), name.hasSuffix("]") { return String(name.dropFirst().dropLast()) }
        return name.hasSuffix(".") ? String(name.dropLast()) : name
    }

    /// A DNS name (LDH labels, 1–63 bytes each, 253 in all) or an IP literal.
    @_spi(TLSBackendImplementation) public static func isValidServerName(_ name: String) -> Bool {
        if isIPAddress(name) { return true }
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { return false }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63 else { return false }
            for byte in label.utf8 {
                let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                    || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2A
                if !ok { return false }
            }
        }
        return true
    }

    /// The text form of a 4- or 16-byte address.
    @_spi(TLSBackendImplementation) public static func ipAddressText(_ bytes: [UInt8]) -> String? {
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
    /// - ASCII case-insensitive (never Unicode case folding), a trailing dot on either side
    ///   ignored; a name with a non-ASCII byte, a label over 63 bytes or over 253 bytes in
    ///   all never matches;
    /// - a wildcard is only the whole left-most label (`*.example.com`), matches exactly one
    ///   non-empty label, and needs at least two labels after it (`*.com`, `*.local` never
    ///   match); partial-label wildcards (`f*.example.com`, `*x.example.com`) never match,
    ///   and a wildcard never matches an IDNA A-label (`xn--…`).
    @_spi(TLSBackendImplementation) public static func matches(_ name: String, leaf: TLSLeafIdentity) -> Bool {
        if let address = ipAddressBytes(name) {
            return leaf.ipAddresses.contains { ipAddressBytes($0) == address }
        }
        let host = normalised(verificationName(name))
        // A reference name with a non-ASCII byte (a U-label, a look-alike) matches nothing:
        // the caller converts IDNs to A-labels (RFC 6125 §6.4.2).
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 < 0x80 }) else { return false }
        if !leaf.dnsNames.isEmpty || !leaf.ipAddresses.isEmpty {
            return leaf.dnsNames.contains { pattern($0, matches: host) }
        }
        guard let commonName = leaf.commonName, ipAddressBytes(commonName) == nil else { return false }
        return pattern(commonName, matches: host)
    }

    /// ASCII case folded (A–Z only, RFC 6125 §6.4.1, RFC 4343), one trailing dot removed.
    /// Never Unicode lowercasing: it folds KELVIN SIGN (U+212A) into `k` and would let
    /// `\u{212A}ey.example` match `key.example`. Non-ASCII bytes stay as they are, and
    /// such a name then matches nothing.
    private static func normalised(_ name: String) -> String {
        var bytes = Array(name.utf8)
        for index in bytes.indices where (0x41...0x5A).contains(bytes[index]) { bytes[index] |= 0x20 }
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One presented identifier against the reference host name (already normalised).
    static func pattern(_ presented: String, matches host: String) -> Bool {
        let pattern = normalised(presented)
        // A backslash is never in a DNS name; in a decoded name it stands for a byte that
        // was not UTF-8 (`\xNN`), which must not match a host name spelled that way.
        guard !pattern.isEmpty, pattern.utf8.allSatisfy({ $0 < 0x80 }), !pattern.contains("\\") else { return false }
        // No DNS name has a label over 63 bytes or more than 253 bytes in all (RFC 1035).
        guard pattern.utf8.count <= 253, !pattern.split(separator: ".").contains(where: { $0.utf8.count > 63 }) else {
            return false
        }
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
