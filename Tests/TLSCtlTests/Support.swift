import Foundation
import Testing
import TLSKit
@_exported import TLSKitTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One backend as a test argument, named in the test report.
struct Backend: CustomTestStringConvertible, Sendable {
    let type: any TLSBackend.Type
    var name: String { type.id.name }
    var testDescription: String { type.id.name }
}

/// Every backend compiled into this build: each test runs once per backend.
let allBackends: [Backend] = TLSBuiltInBackends.available.map { Backend(type: $0) }

/// Every (client, server) pair of compiled backends: one pair per build with one
/// backend, four with both.
let backendPairs: [(Backend, Backend)] = allBackends.flatMap { client in allBackends.map { (client, $0) } }

/// The absolute path of a tool the tests need; a missing tool fails the test.
func tool(_ name: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TLSError(.invalidConfiguration,
                   "\(name) is not installed: the tlsctl tests need it (apt-get install openssl gnutls-bin curl)",
                   backend: "tests")
}

/// A scratch directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tlsctl-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A certificate and key generated now by the backend, written to files for the tools.
struct CertificateFiles {
    let directory: URL
    let identity: TLSIdentity
    let cert: String
    let key: String

    init(_ backend: Backend, name: String = "server", names: [String] = ["localhost", "127.0.0.1", "::1"]) throws {
        directory = try temporaryDirectory()
        identity = try backend.type.makeSelfSignedIdentity(
            commonName: names.first ?? name, subjectAlternativeNames: names, validityDays: 2)
        cert = directory.appendingPathComponent("\(name).pem").path
        key = directory.appendingPathComponent("\(name).key").path
        try identity.certificateChainPEM.write(toFile: cert, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
    }

    /// A file with any text in the same directory.
    func file(_ name: String, _ text: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// A client context on `backend` that trusts exactly this certificate, for `localhost`.
    func clientContext(_ backend: Backend) throws -> TLSContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        configuration.serverName = "localhost"
        return try backend.type.makeContext(configuration)
    }
}

extension Child {
    /// tlsctl with these arguments.
    static func tlsctl(_ arguments: [String]) throws -> Child {
        try Child(try tlsctlPath(), arguments)
    }
}

/// A running `tlsctl serve`, started with `--port 0`, once it printed its port.
struct Server {
    let child: Child
    let port: UInt16
    /// The `SHA-256 fingerprint:` line's value.
    let fingerprint: String

    init(_ arguments: [String]) throws {
        child = try Child.tlsctl(["serve", "--port", "0"] + arguments)
        try child.waitForOutput("listening on ")
        let lines = child.output.split(separator: "\n")
        guard let listening = lines.first(where: { $0.hasPrefix("listening on ") }),
              let colon = listening.lastIndex(of: ":"),
              let port = UInt16(listening[listening.index(after: colon)...]) else {
            throw TLSError(.internalError, "no port in: \(child.output)", backend: "tests")
        }
        self.port = port
        fingerprint = lines.first(where: { $0.hasPrefix("SHA-256 fingerprint: ") })
            .map { String($0.dropFirst("SHA-256 fingerprint: ".count)) } ?? ""
    }
}

/// Runs tlsctl with `input` on stdin (then end of input) and waits for it to exit.
func runTLSCtl(_ arguments: [String], input: String, timeout: TimeInterval = 30) throws -> (Int32, String, String) {
    let child = try Child.tlsctl(arguments)
    child.send(input)
    child.closeInput()
    let status = child.wait(timeout: timeout)
    return (status, child.output, child.errorOutput)
}

/// Runs a tool to completion with `input` on stdin.
func run(_ executable: String, _ arguments: [String], input: String = "", timeout: TimeInterval = 30) throws -> (Int32, String, String) {
    let child = try Child(executable, arguments)
    child.send(input)
    child.closeInput()
    let status = child.wait(timeout: timeout)
    return (status, child.output, child.errorOutput)
}

/// The lines of a text, without empty ones.
func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

/// The inodes of the sockets among a process's descriptors (`/proc/<pid>/fd`).
func socketInodes(of pid: Int32) throws -> Set<String> {
    Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { name -> String? in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)"),
              target.hasPrefix("socket:[") else { return nil }  // closed meanwhile, or not a socket
        return String(target.dropFirst("socket:[".count).dropLast())
    })
}

/// Every TCP socket the kernel lists (`/proc/net/tcp` and `/proc/net/tcp6`): its local
/// port, its state (`0A` is LISTEN) and its inode. A socket's inode is never given to
/// another socket while it exists, so it names that socket whoever binds its port later.
func tcpSockets() throws -> [(port: UInt16, state: String, inode: String)] {
    try ["/proc/net/tcp", "/proc/net/tcp6"].flatMap { path in
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().compactMap { line in
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let fields = line.split(separator: " ")
            guard fields.count > 9, let port = fields[1].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) })
            else { return nil }
            return (port, String(fields[3]), String(fields[9]))
        }
    }
}

/// `tlsctl serve` run under `strace -f -e trace=SYSCALLS -o TRACE`, once it printed its
/// `listening on` line: the tracer and the port it listens on.
func tracedServe(_ syscalls: String, trace: String, _ arguments: [String]) throws -> (Child, UInt16) {
    let child = try Child(try tool("strace"), ["-f", "-e", "trace=\(syscalls)", "-o", trace, try tlsctlPath(), "serve", "--port", "0"]
                          + arguments)
    try child.waitForOutput("listening on ")
    let listening = try #require(child.output.split(separator: "\n").first { $0.hasPrefix("listening on ") })
    let port = try #require(UInt16(listening.split(separator: ":").last ?? ""), "no port in \(child.output)")
    return (child, port)
}
