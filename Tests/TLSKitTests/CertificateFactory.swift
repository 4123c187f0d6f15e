import Foundation
import TLSKit

/// Certificate chains made at run time with the `openssl` command-line tool, for cases
/// the backends' own self-signed generator does not cover (CA-issued leaves).
struct CertificateFactory {
    let directory: URL

    init() throws { directory = try temporaryDirectory() }

    private init(directory: URL) { self.directory = directory }

    /// A private copy of every file in a directory of its own, for one test that issues
    /// more certificates, writes files, or reads the CA database (`openssl ocsp`): the
    /// shared factory is never written after it is made, so parallel tests cannot race
    /// on its `index.txt` or on a fixed file name. `remove()` it when done.
    func copy() throws -> CertificateFactory {
        let target = try temporaryDirectory()
        try FileManager.default.removeItem(at: target)
        try FileManager.default.copyItem(at: directory, to: target)
        let copy = CertificateFactory(directory: target)
        // The CA configuration names its database by absolute path: point it at the copy.
        let config = copy.path("ca.cnf")
        if FileManager.default.fileExists(atPath: config) {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            try text.replacingOccurrences(of: directory.path, with: target.path).write(toFile: config, atomically: true, encoding: .utf8)
        }
        return copy
    }

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
               key: String = "ec", digest: String = "sha256",
               basicConstraints: String? = nil, keyUsage: String? = nil, extraExtensions: [String] = []) throws {
        let keyArguments = key == "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", key]
        try openssl(["req", "-new"] + keyArguments + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                     "-subj", "/CN=\(commonName ?? names.first ?? name)"])
        var extensions = ["basicConstraints=critical,\(basicConstraints ?? "CA:\(isCA ? "TRUE" : "FALSE")")",
                          "keyUsage=critical,\(keyUsage ?? (isCA ? "keyCertSign,cRLSign" : "digitalSignature,keyEncipherment"))",
                          "subjectKeyIdentifier=hash"] + extraExtensions
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

    /// Flips one bit in the last byte of `<name>.pem`'s signature (inside the BIT STRING,
    /// so the DER stays well-formed) and writes the result as `<newName>.pem`.
    func tamperSignature(_ name: String, as newName: String) throws {
        var der = firstDER(ofPEM: try read("\(name).pem"))
        let (tbs, algorithm, signature) = try Self.certificateParts(der)
        _ = (tbs, algorithm)
        der[signature.upperBound - 1] ^= 0x01
        try Self.pem(der).write(toFile: path("\(newName).pem"), atomically: true, encoding: .utf8)
    }

    /// Replaces `placeholder` (ASCII, in the to-be-signed part of `<name>.pem`) with
    /// `bytes` of the same length, signs the result again with `<issuer>.key` (an EC key,
    /// ECDSA with SHA-256, as `issue` makes them) and writes it back: how a certificate
    /// gets names `openssl` will not write (a NUL, an ESC, bytes that are not UTF-8).
    func patch(_ name: String, issuer: String, replacing placeholder: String, with bytes: [UInt8]) throws {
        let old = Array(placeholder.utf8)
        precondition(old.count == bytes.count, "the replacement must keep the DER lengths")
        let der = firstDER(ofPEM: try read("\(name).pem"))
        let (tbsRange, algorithm, _) = try Self.certificateParts(der)
        var tbs = Array(der[tbsRange])
        var replaced = 0
        var index = 0
        while index + old.count <= tbs.count {
            if Array(tbs[index..<index + old.count]) == old {
                tbs.replaceSubrange(index..<index + old.count, with: bytes)
                replaced += 1
                index += old.count
            } else {
                index += 1
            }
        }
        guard replaced > 0 else { throw TLSError(.internalError, "placeholder \(placeholder) not in \(name)", backend: "tests") }
        try Data(tbs).write(to: URL(fileURLWithPath: path("\(name).tbs")))
        try openssl(["dgst", "-sha256", "-sign", path("\(issuer).key"), "-out", path("\(name).sig"), path("\(name).tbs")])
        let signature = Array(try Data(contentsOf: URL(fileURLWithPath: path("\(name).sig"))))
        let body = tbs + Array(der[algorithm]) + Self.derElement(0x03, [0] + signature)
        try Self.pem(Self.derElement(0x30, body)).write(toFile: path("\(name).pem"), atomically: true, encoding: .utf8)
    }

    /// The whole-element ranges of a certificate's tbsCertificate and signatureAlgorithm,
    /// and the content range of its signature BIT STRING.
    static func certificateParts(_ der: [UInt8]) throws -> (Range<Int>, Range<Int>, Range<Int>) {
        func element(at start: Int) throws -> (content: Range<Int>, whole: Range<Int>) {
            guard start + 2 <= der.count else { throw TLSError(.internalError, "truncated DER", backend: "tests") }
            var cursor = start + 1
            var length = Int(der[cursor])
            cursor += 1
            if length >= 0x80 {
                let count = length & 0x7F
                length = 0
                for _ in 0..<count { length = length << 8 | Int(der[cursor]); cursor += 1 }
            }
            return (cursor..<cursor + length, start..<cursor + length)
        }
        let top = try element(at: 0)
        let tbs = try element(at: top.content.lowerBound)
        let algorithm = try element(at: tbs.whole.upperBound)
        let signature = try element(at: algorithm.whole.upperBound)
        return (tbs.whole, algorithm.whole, signature.content)
    }

    /// A DER element: tag, definite length, content.
    static func derElement(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        var count = content.count
        if count < 0x80 {
            length = [UInt8(count)]
        } else {
            while count > 0 { length.insert(UInt8(count & 0xFF), at: 0); count >>= 8 }
            length.insert(0x80 | UInt8(length.count), at: 0)
        }
        return [tag] + length + content
    }

    /// DER certificate bytes as PEM.
    static func pem(_ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n\(base64)\n-----END CERTIFICATE-----\n"
    }

    /// An in-memory handshake: a server presenting `chain` (files, leaf first) with
    /// `<key>.key`, up to TLS 1.3, and a client configured by `configure`.
    func memoryHandshake(backend: Backend, chain: [String], key: String,
                         configure: (inout TLSConfiguration) -> Void) throws -> (MemoryLink, [Step], [Step]) {
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: .pem(try chain.map { try read("\($0).pem") }.joined()), privateKey: .file(path("\(key).key")))
        server.maximumTLSVersion = .tls13
        var client = TLSConfiguration.makeClientConfiguration()
        configure(&client)
        let link = try MemoryLink(client: backend.type.makeContext(client), server: backend.type.makeContext(server))
        let (clientSteps, serverSteps) = link.handshake()
        return (link, clientSteps, serverSteps)
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
