import Foundation
public import TLSCore

/// Where the conformance cases get their certificates. Every certificate is made at run
/// time (valid from a day ago for two days): none is committed, none expires in a build.
///
/// Two identities are used, both ECDSA P-256 and valid for `localhost`, `127.0.0.1` and `::1`:
/// - the **leaf**: a self-signed certificate and its key; clients trust exactly it;
/// - the **chain**: a leaf issued by an intermediate CA issued by a root, as a three-
///   certificate chain (leaf, intermediate, root, in that order) and the leaf's key;
///   clients trust the root.
public struct TLSConformanceIdentities: Sendable {
    enum Source: Sendable {
        case automatic
        case openSSLTool
        case fixed(leaf: TLSIdentity, chain: TLSIdentity)
    }

    let source: Source

    /// The leaf from the backend's own generator (`makeSelfSignedIdentity`) when the
    /// backend has the `.selfSignedIdentity` capability, else from the `openssl` tool;
    /// the chain from the `openssl` tool (made once per process).
    public static let automatic = TLSConformanceIdentities(source: .automatic)

    /// Both identities from the `openssl` command-line tool (found in `/usr/bin`,
    /// `/usr/local/bin` or `/bin`), made once per process in a temporary directory.
    public static let openSSLTool = TLSConformanceIdentities(source: .openSSLTool)

    /// Identities the caller made.
    /// - Parameters:
    ///   - leaf: a certificate valid for `localhost`, `127.0.0.1` and `::1` that a client
    ///     can trust as its own anchor (self-signed), with its key.
    ///   - chain: a leaf for the same names, its intermediate CA and the root CA, in that
    ///     order, with the leaf's key.
    public static func fixed(leaf: TLSIdentity, chain: TLSIdentity) -> TLSConformanceIdentities {
        TLSConformanceIdentities(source: .fixed(leaf: leaf, chain: chain))
    }

    /// The names every conformance identity is valid for.
    public static let names = ["localhost", "127.0.0.1", "::1"]

    /// The self-signed leaf for `backend`.
    func leaf(for backend: any TLSBackend.Type) throws -> TLSIdentity {
        switch source {
        case .automatic where backend.capabilities.contains(.selfSignedIdentity):
            return try backend.makeSelfSignedIdentity(commonName: "localhost", subjectAlternativeNames: Self.names,
                                                      validityDays: 2)
        case .automatic, .openSSLTool:
            return try OpenSSLToolIdentities.shared().leaf
        case .fixed(let leaf, _):
            return leaf
        }
    }

    /// The three-certificate chain (leaf, intermediate, root) and the leaf's key.
    func chain() throws -> TLSIdentity {
        switch source {
        case .automatic, .openSSLTool: return try OpenSSLToolIdentities.shared().chain
        case .fixed(_, let chain): return chain
        }
    }
}

/// The identities made by the `openssl` command-line tool, once per process.
struct OpenSSLToolIdentities: Sendable {
    let leaf: TLSIdentity
    let chain: TLSIdentity

    private static let made = Locked<Result<OpenSSLToolIdentities, any Error>?>(nil)

    /// Made on first use; the same files afterwards (or the same error).
    static func shared() throws -> OpenSSLToolIdentities {
        try made.withLock { value in
            if let value { return value }
            let result = Result { try make() }
            value = result
            return result
        }.get()
    }

    /// Runs `openssl` in a fresh temporary directory.
    static func make() throws -> OpenSSLToolIdentities {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        let sans = "subjectAltName=" + TLSConformanceIdentities.names
            .map { $0.contains(":") || $0.allSatisfy({ $0.isNumber || $0 == "." }) ? "IP:\($0)" : "DNS:\($0)" }
            .joined(separator: ",")
        let leafExtensions = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
                              "extendedKeyUsage=serverAuth,clientAuth", "subjectKeyIdentifier=hash", sans]
        let caExtensions = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
                            "subjectKeyIdentifier=hash"]

        // The self-signed leaf.
        try runOpenSSL(["req", "-x509"] + key + ["-keyout", path("leaf.key"), "-out", path("leaf.pem"), "-days", "2",
                                                 "-subj", "/CN=localhost"]
                       + leafExtensions.flatMap { ["-addext", $0] }, in: directory)
        // Root, intermediate, and a leaf the intermediate issues.
        try runOpenSSL(["req", "-x509"] + key + ["-keyout", path("root.key"), "-out", path("root.pem"), "-days", "2",
                                                 "-subj", "/CN=TLSKit conformance root"]
                       + caExtensions.flatMap { ["-addext", $0] }, in: directory)
        func issue(_ name: String, subject: String, issuer: String, extensions: [String]) throws {
            try runOpenSSL(["req", "-new"] + key + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                                                    "-subj", subject], in: directory)
            try extensions.joined(separator: "\n").write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
            try runOpenSSL(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(issuer).pem"),
                            "-CAkey", path("\(issuer).key"), "-set_serial", "\(UInt32.random(in: 1...UInt32.max))",
                            "-days", "2", "-sha256", "-extfile", path("\(name).ext"), "-out", path("\(name).pem")],
                           in: directory)
        }
        try issue("inter", subject: "/CN=TLSKit conformance intermediate", issuer: "root", extensions: caExtensions)
        try issue("good", subject: "/CN=localhost", issuer: "inter", extensions: leafExtensions)
        return OpenSSLToolIdentities(
            leaf: TLSIdentity(certificateChainPEM: try read("leaf.pem"), privateKeyPEM: try read("leaf.key")),
            chain: TLSIdentity(certificateChainPEM: try read("good.pem") + read("inter.pem") + read("root.pem"),
                               privateKeyPEM: try read("good.key")))
    }

    /// Runs `openssl` with `arguments`, its output in files of `directory`; throws with
    /// its standard error when it fails.
    static func runOpenSSL(_ arguments: [String], in directory: URL) throws {
        let result = try runTool(try tool("openssl"), arguments, in: directory)
        guard result.status == 0 else {
            throw TLSError(.internalError, "openssl \(arguments.joined(separator: " ")) failed: \(result.errorOutput)",
                           backend: "conformance")
        }
    }
}
