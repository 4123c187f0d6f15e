import Foundation
import TLSCore
import FakeTLS

/// A self-signed ECDSA P-256 certificate and its key, made at run time with the
/// `openssl` command-line tool (FakeTLS cannot make one: it has no cryptography).
struct Identity: Sendable {
    let certificatePEM: String
    let keyPEM: String

    static func make(commonName: String = "localhost", names: String = "DNS:localhost,IP:127.0.0.1") throws -> Identity {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faketls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("key.pem").path, cert = directory.appendingPathComponent("cert.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                             "-subj", "/CN=\(commonName)", "-addext", "subjectAltName=\(names)", "-keyout", key, "-out", cert]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TLSError(.internalError, "openssl req failed", backend: "tests") }
        return Identity(certificatePEM: try String(contentsOfFile: cert, encoding: .utf8),
                        keyPEM: try String(contentsOfFile: key, encoding: .utf8))
    }

    func serverConfiguration() -> TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(certificateChain: .pem(certificatePEM), privateKey: .pem(keyPEM))
    }

    /// A client trusting exactly this certificate.
    func clientConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(certificatePEM)])
        return configuration
    }
}

/// Two FakeTLS connections joined by in-memory transports.
struct Link {
    let client: TLSConnection
    let server: TLSConnection
    let clientWire = TLSMemoryPair()
    let serverWire = TLSMemoryPair()

    init(client: TLSConfiguration, server: TLSConfiguration, serverName: String? = "localhost") throws {
        self.client = try FakeTLSBackend.makeContext(client).makeConnection()
        self.server = try FakeTLSBackend.makeContext(server).makeConnection()
        self.client.serverName = serverName
        try self.client.setTransport(.memory(clientWire))
        try self.server.setTransport(.memory(serverWire))
        try self.client.setConnectState()
        try self.server.setAcceptState()
    }

    /// Steps both handshakes until neither moves; returns the last results.
    @discardableResult
    func handshake() -> (client: Int32, server: Int32) {
        var results: (Int32, Int32) = (-1, -1)
        for _ in 0..<32 {
            results = (client.doHandshake(), server.doHandshake())
            if TLSMemoryPair.exchange(clientWire, serverWire) == 0 && (results.0 != -1 || results.1 != -1) { break }
        }
        return results
    }
}
