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
