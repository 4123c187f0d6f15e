import Foundation
import TLSKit

/// Certificate chains made at run time with the `openssl` command-line tool, for cases
/// the backends' own self-signed generator does not cover (CA-issued leaves).
struct CertificateFactory {
    let directory: URL

    init() throws { directory = try temporaryDirectory() }

    /// Runs `openssl` with the arguments; throws with its stderr on failure.
    @discardableResult
    func openssl(_ arguments: [String], input: String? = nil) throws -> String {
        let peer = try Peer(try tool("openssl"), arguments)
        if let input { peer.send(input) }
        peer.closeInput()
        let status = peer.wait(timeout: 60)
        guard status == 0 else {
            throw TLSError(.internalError, "openssl \(arguments.joined(separator: " ")) failed: \(peer.errorOutput)", backend: "tests")
        }
        return peer.output
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    /// A self-signed CA certificate and key: `<name>.pem`, `<name>.key`.
    func makeCA(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", path("\(name).key"), "-out", path("\(name).pem"), "-days", "2",
                     "-subj", "/CN=TLSKit test CA \(name)",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    /// A leaf for `names` issued by CA `ca`: `<name>.pem` (leaf) and `<name>.key`.
    func makeLeaf(_ name: String, issuer ca: String, names: [String]) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(names.first ?? name)"])
        let sans = names.map { TLSKitTestsHostName.isIP($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        let extensions = """
            basicConstraints=critical,CA:FALSE
            keyUsage=critical,digitalSignature
            extendedKeyUsage=serverAuth,clientAuth
            subjectAltName=\(sans)
            """
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
                     "-CAcreateserial", "-days", "2", "-extfile", path("\(name).ext"), "-out", path("\(name).pem")])
    }

    /// Issues `<name>.pem`/`<name>.key` with `openssl ca`, which allows any validity
    /// window (expired, not yet valid), any digest and key, and any extensions.
    /// - Parameters:
    ///   - issuer: the CA's name, or nil for a self-signed certificate.
    ///   - names: SANs (DNS names and IP addresses); empty for a CN-only certificate.
    ///   - days: validity relative to now: `(-10, -1)` is expired, `(1, 10)` not yet valid.
    func issue(_ name: String, issuer: String?, commonName: String? = nil, names: [String] = [],
               days: (Int, Int) = (-1, 2), isCA: Bool = false, extendedKeyUsage: String? = "serverAuth,clientAuth",
               key: String = "ec", digest: String = "sha256") throws {
        let keyArguments = key == "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", key]
        try openssl(["req", "-new"] + keyArguments + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                     "-subj", "/CN=\(commonName ?? names.first ?? name)"])
        var extensions = ["basicConstraints=critical,CA:\(isCA ? "TRUE" : "FALSE")",
                          "keyUsage=critical,\(isCA ? "keyCertSign,cRLSign" : "digitalSignature,keyEncipherment")",
                          "subjectKeyIdentifier=hash"]
        if let extendedKeyUsage { extensions.append("extendedKeyUsage=\(extendedKeyUsage)") }
        if !names.isEmpty {
            extensions.append("subjectAltName=" + names.map { TLSKitTestsHostName.isIP($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ","))
        }
        try extensions.joined(separator: "\n").write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try caConfiguration()
        var arguments = ["ca", "-batch", "-notext", "-config", path("ca.cnf"), "-in", path("\(name).csr"),
                         "-out", path("\(name).pem"), "-extfile", path("\(name).ext"), "-md", digest,
                         "-startdate", Self.asn1Time(daysFromNow: days.0), "-enddate", Self.asn1Time(daysFromNow: days.1)]
        if let issuer {
            arguments += ["-cert", path("\(issuer).pem"), "-keyfile", path("\(issuer).key")]
        } else {
            arguments += ["-selfsign", "-keyfile", path("\(name).key")]
        }
        try openssl(arguments)
    }

    /// Revokes `<name>.pem` in the database of CA `ca` and writes `<ca>.crl.pem`.
    func revoke(_ name: String, ca: String) throws {
        try caConfiguration()
        try openssl(["ca", "-config", path("ca.cnf"), "-revoke", path("\(name).pem"),
                     "-cert", path("\(ca).pem"), "-keyfile", path("\(ca).key")])
        try openssl(["ca", "-config", path("ca.cnf"), "-gencrl", "-crldays", "2", "-out", path("\(ca).crl.pem"),
                     "-cert", path("\(ca).pem"), "-keyfile", path("\(ca).key")])
    }

    /// The minimal `openssl ca` configuration and database, once per directory.
    private func caConfiguration() throws {
        let config = path("ca.cnf")
        if FileManager.default.fileExists(atPath: config) { return }
        try FileManager.default.createDirectory(atPath: path("issued"), withIntermediateDirectories: true)
        try "".write(toFile: path("index.txt"), atomically: true, encoding: .utf8)
        try "unique_subject = no\n".write(toFile: path("index.txt.attr"), atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: path("serial"), atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: path("crlnumber"), atomically: true, encoding: .utf8)
        let text = [
            "[ ca ]", "default_ca = tlskit", "[ tlskit ]",
            "database = \(path("index.txt"))", "new_certs_dir = \(path("issued"))",
            "serial = \(path("serial"))", "crlnumber = \(path("crlnumber"))",
            "default_md = sha256", "policy = anything", "unique_subject = no", "copy_extensions = none",
            "[ anything ]", "commonName = optional",
        ].joined(separator: "\n")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// `YYYYMMDDHHMMSSZ`, `days` from now.
    static func asn1Time(daysFromNow days: Int) -> String {
        let date = Date().addingTimeInterval(Double(days) * 86_400)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMddHHmmss'Z'"
        return formatter.string(from: date)
    }

    func identity(_ name: String) throws -> TLSIdentity {
        TLSIdentity(certificateChainPEM: try read("\(name).pem"), privateKeyPEM: try read("\(name).key"))
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

enum TLSKitTestsHostName {
    static func isIP(_ text: String) -> Bool { text.contains(":") || text.allSatisfy { $0.isNumber || $0 == "." } }
}

/// The DER bytes of the first certificate in a PEM text.
func firstDER(ofPEM pem: String) -> [UInt8] {
    let lines = pem.split(separator: "\n")
    guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN CERTIFICATE") }),
          let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END CERTIFICATE") }) else { return [] }
    let base64 = lines[(begin + 1)..<end].joined()
    return Array(Data(base64Encoded: base64) ?? Data())
}
