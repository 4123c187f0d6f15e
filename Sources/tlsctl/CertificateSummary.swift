import Foundation
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

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
    static func date(_ seconds: Int64) -> String { TLSReloadEvent.utc(seconds) }

    /// The DER bytes of the first certificate in PEM text (the identity's leaf), or nil.
    static func firstCertificateDER(pem: String) -> [UInt8]? {
        let bytes = Array(pem.utf8)
        return TLSDataSource.isPEM(bytes) ? TLSPEMReader.firstCertificate(in: bytes) : nil
    }
}
