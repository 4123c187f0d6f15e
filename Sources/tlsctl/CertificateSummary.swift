import Foundation
import TLSKit

/// Human-readable lines about certificates, from the backend's parser
/// (`Backend.certificateInfo(der:)`); tlsctl itself parses nothing but PEM armour.
enum CertificateSummary {
    /// `peer subject:`, `peer SANs:`, `peer issuer:`, validity and fingerprint lines for
    /// the leaf of a chain, or one line saying there is no certificate. The peer's text
    /// is escaped (``TLSUntrustedText``): no control byte of its certificate is printed.
    static func lines(chain: [[UInt8]], backend: any TLSBackend.Type, label: String) -> [String] {
        guard let leaf = chain.first else { return ["\(label) cert:     none"] }
        let info: TLSCertificateInfo
        do {
            info = try backend.certificateInfo(der: leaf)
        } catch {
            return ["\(label) cert:     unreadable (\(describe(error)))"]
        }
        return [
            "\(label) subject:  \(TLSUntrustedText.escape(info.subject))",
            "\(label) SANs:     \(TLSUntrustedText.escape(sans(info)))",
            "\(label) issuer:   \(TLSUntrustedText.escape(info.issuer))",
            "\(label) validity: \(date(info.notValidBefore)) to \(date(info.notValidAfter))",
            "\(label) SHA-256:  \(info.sha256FingerprintText)",
            "\(label) chain:    \(chain.count) certificate(s)",
        ]
    }

    /// `DNS:localhost, IP:127.0.0.1`, or `none`.
    static func sans(_ info: TLSCertificateInfo) -> String {
        let all = info.dnsNames.map { "DNS:\($0)" } + info.ipAddresses.map { "IP:\($0)" }
        return all.isEmpty ? "none" : all.joined(separator: ", ")
    }

    /// `2026-05-01 12:00:00 UTC`.
    static func date(_ seconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// The DER bytes of the first certificate in PEM text (the identity's leaf), or nil.
    static func firstCertificateDER(pem: String) -> [UInt8]? {
        let lines = pem.split(whereSeparator: \.isNewline)
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN CERTIFICATE-----") }),
              let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END CERTIFICATE-----") })
        else { return nil }
        guard let data = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else { return nil }
        return Array(data)
    }
}
