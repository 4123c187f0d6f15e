import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// `tlsctl serve` replacing its certificate while it serves: SIGHUP, --reload-interval,
/// a broken reload, with curl looping against it.
@Suite("tlsctl serve reloads", .serialized, .timeLimit(.minutes(10)), .sharesProcess)
struct TLSCtlReloadTests {
    /// Two self-signed identities for localhost, and the files serve reads.
    struct Files {
        let one: CertificateFiles
        let two: CertificateFiles
        let cert: String
        let key: String
        /// Both certificates: what curl trusts, so that it accepts either.
        let bundle: String

        init(_ backend: Backend) throws {
            one = try CertificateFiles(backend, name: "one")
            two = try CertificateFiles(backend, name: "two")
            cert = one.directory.appendingPathComponent("serve.pem").path
            key = one.directory.appendingPathComponent("serve.key").path
            bundle = try one.file("both.pem", one.identity.certificateChainPEM + two.identity.certificateChainPEM)
            try install(one)
        }

        /// Renames new files over serve's (a certificate and a key, possibly mismatched).
        func install(_ certificate: CertificateFiles, key keyFiles: CertificateFiles? = nil) throws {
            for (text, target) in [(certificate.identity.certificateChainPEM, cert),
                                   ((keyFiles ?? certificate).identity.privateKeyPEM, key)] {
                try text.write(toFile: target + ".new", atomically: false, encoding: .utf8)
                guard rename(target + ".new", target) == 0 else { throw POSIXError(.EIO) }
            }
        }

        func remove() {
            one.remove()
            two.remove()
        }
    }

    /// Which of the two certificates serve presents: a client that trusts only `one`,
    /// then one that trusts only `two`.
    static func presented(_ backend: Backend, port: UInt16, _ files: Files) throws -> String {
        for (name, candidate) in [("one", files.one), ("two", files.two)] {
            let context = try candidate.clientContext(backend)
            if let socket = try? TLSSocket.connect(host: "127.0.0.1", port: port, context: context,
                                                   serverName: "localhost", timeout: .seconds(30)) {
                socket.close()
                return name
            }
        }
        return "neither"
    }

    @Test("SIGHUP reloads --cert/--key while curl loops against serve: every request succeeds, new handshakes get the new certificate, a broken pair keeps the old one",
          arguments: allBackends)
    func sighupWhileCurlLoops(backend: Backend) throws {
        let files = try Files(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--http"])
        defer { server.child.stop() }
        let port = server.port
        #expect(try Self.presented(backend, port: port, files) == "one")

        // curl in a loop: five requests per run, each on a fresh connection.
        let stop = Locked(false)
        let bundle = files.bundle
        let curl = try tool("curl")
        let outcome = Locked<(runs: Int, failures: [String])?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            var runs = 0
            var failures: [String] = []
            while !stop.withLock({ $0 }) || runs < 3 {
                let urls = (0..<5).map { "https://localhost:\(port)/\(runs)-\($0)" }
                do {
                    let (status, page, errors) = try run(curl, ["--silent", "--show-error", "--cacert", bundle,
                                                                "--resolve", "localhost:\(port):127.0.0.1", "--no-keepalive"] + urls)
                    let answered = page.components(separatedBy: "request:       GET /\(runs)-").count - 1
                    if status != 0 || answered != 5 { failures.append("run \(runs): exit \(status), \(answered) answered: \(errors)") }
                } catch {
                    failures.append("run \(runs): \(error)")
                }
                runs += 1
            }
            outcome.withLock { $0 = (runs, failures) }
            done.signal()
        }.start()

        for (generation, next) in [(2, files.two), (3, files.one), (4, files.two)] {
            try files.install(next)
            server.child.signal(SIGHUP)
            try server.child.waitFor("generation \(generation) in use")
            #expect(try Self.presented(backend, port: port, files) == (next.cert == files.two.cert ? "two" : "one"))
        }

        // A certificate with another's key: refused, and serve keeps presenting "two".
        try files.install(files.one, key: files.two)
        server.child.signal(SIGHUP)
        try server.child.waitFor("FAILED, keeping generation 4")
        #expect(try Self.presented(backend, port: port, files) == "two")

        stop.withLock { $0 = true }
        try #require(done.wait(timeout: .now() + 120) == .success, "the curl loop did not finish")
        let (runs, failures) = try #require(outcome.withLock { $0 })
        #expect(runs >= 3)
        #expect(failures.isEmpty, "\(failures)")

        let reloadLines = lines(server.child.errorOutput).filter { $0.contains("reload") }
        #expect(reloadLines.count == 4, "one line per reload: \(reloadLines)")
        for (line, generation) in zip(reloadLines, 2...4) {
            #expect(line.hasPrefix("tlsctl: reload (on request): generation \(generation) in use: CN=localhost until "), "\(line)")
        }
        #expect(reloadLines.last?.hasPrefix("tlsctl: reload (on request) FAILED, keeping generation 4: TLSError(\(backend.name)) keyCertificateMismatch") == true,
                "\(reloadLines)")
        // Still serving, and SIGTERM still stops it.
        server.child.signal(SIGTERM)
        #expect(server.child.wait(timeout: 10) == 0)
    }

    @Test("--reload-interval reloads when the files change, and logs nothing while they do not", arguments: allBackends)
    func reloadInterval(backend: Backend) throws {
        let files = try Files(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
                                 "--reload-interval", "1"])
        defer { server.child.stop() }
        #expect(server.child.output.contains("reloading --cert/--key/--ca-file when they change (checked every 1 s) and on SIGHUP"))
        Thread.sleep(forTimeInterval: 1.5)
        #expect(!server.child.errorOutput.contains("reload"), "unchanged files: \(server.child.errorOutput)")
        try files.install(files.two)
        try server.child.waitFor("tlsctl: reload (files changed): generation 2 in use: CN=localhost until ")
        #expect(try Self.presented(backend, port: server.port, files) == "two")

        // Arguments: the interval needs files to watch, and a sane value.
        let (status, _, errors) = try runTLSCtl(["serve", "--reload-interval", "5"], input: "")
        #expect(status != 0)
        #expect(errors.contains("--reload-interval watches the files of --cert and --key: it needs them"), "\(errors)")
        let (zeroStatus, _, zeroErrors) = try runTLSCtl(["serve", "--cert", files.cert, "--key", files.key,
                                                         "--reload-interval", "0"], input: "")
        #expect(zeroStatus != 0)
        #expect(zeroErrors.contains("--reload-interval must be 1 to 86400 seconds"), "\(zeroErrors)")
    }
}
