import Foundation
import Testing
import TLSKit

/// Help texts, usage errors (exit 2) and configuration errors (exit 1, one line).
@Suite("tlsctl command line", .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlCommandLineTests {
    @Test("tlsctl --help lists the four subcommands and the exit statuses")
    func rootHelp() throws {
        let (status, output, _) = try runTLSCtl(["--help"], input: "")
        #expect(status == 0)
        #expect(output.contains("USAGE: tlsctl <subcommand>"))
        for line in ["  connect ", "  serve ", "  demo ", "  info "] {
            #expect(output.contains(line), "missing \(line) in \(output)")
        }
        #expect(output.contains("2 a usage error"))
    }

    @Test("tlsctl connect --help shows every flag and the exit statuses")
    func connectHelp() throws {
        let (status, output, _) = try runTLSCtl(["connect", "--help"], input: "")
        #expect(status == 0)
        #expect(output.contains("USAGE: tlsctl connect [<options>] <host:port>"))
        for flag in ["--server-name <name>", "--ca-file <pem>", "--cert <pem>", "--key <pem>", "--alpn <list>",
                     "--min-version <min-version>", "--max-version <max-version>", "--insecure", "--quiet", "[::1]:port",
                     "--listen <port>", "--listen-host <addr>", "--max-connections <n>"] {
            #expect(output.contains(flag), "missing \(flag) in \(output)")
        }
        #expect(output.contains("hostnameMismatch"))
    }

    @Test("tlsctl serve --help shows every flag and what --max-connections means")
    func serveHelp() throws {
        let (status, output, _) = try runTLSCtl(["serve", "--help"], input: "")
        #expect(status == 0)
        #expect(output.contains("USAGE: tlsctl serve"))
        for flag in ["--host <addr>", "--port <n>", "--cert <pem>", "--key <pem>", "--ca-file <pem>",
                     "--verify-client <required|optional>", "--alpn <list>", "--echo", "--http",
                     "--max-connections <n>", "--handshake-timeout <seconds>", "listening on HOST:PORT",
                     "--forward <host:port>", "ghostunnel",
                     "It does not cap how many run at once."] {
            #expect(output.contains(flag), "missing \(flag) in \(output)")
        }
    }

    @Test("usage errors exit 2 with a message naming the problem",
          arguments: [
            (["connect"], "Missing expected argument '<host:port>'"),
            (["connect", "localhost"], "'localhost' has no port: write HOST:PORT"),
            (["connect", "::1:443"], "write an IPv6 address in brackets"),
            (["connect", "localhost:99999"], "the port must be a number from 1 to 65535"),
            (["connect", "localhost:443", "--min-version", "1.1"], "Please provide one of '1.2' and '1.3'"),
            (["connect", "localhost:443", "--min-version", "1.3", "--max-version", "1.2"], "--min-version TLSv1.3 is above --max-version TLSv1.2"),
            (["connect", "localhost:443", "--cert", "c.pem"], "--cert needs --key"),
            (["connect", "localhost:443", "--alpn", "h2,,x"], "The value 'h2,,x' is invalid for '--alpn <list>'"),
            (["connect", "localhost:443", "--insecure", "--ca-file", "c.pem"], "--insecure turns verification off"),
            (["connect", "localhost:443", "--backend", "NoSuchTLS"], "backend 'NoSuchTLS' is not compiled in"),
            (["serve", "--key", "k.pem"], "--key needs --cert"),
            (["serve", "--verify-client", "required"], "--verify-client needs --ca-file"),
            (["serve", "--ca-file", "ca.pem"], "add --verify-client required|optional"),
            (["serve", "--verify-client", "sometimes", "--ca-file", "ca.pem"], "Please provide one of 'required' and 'optional'"),
            (["serve", "--echo", "--http"], "--echo"),
            (["serve", "--forward", "127.0.0.1:8080", "--http"], "--forward relays to the backend: it cannot be combined with --http"),
            (["serve", "--forward", "backend"], "'backend' has no port: write HOST:PORT"),
            (["connect", "localhost:443", "--listen", "70000"], "--listen must be a port from 0 to 65535"),
            (["connect", "localhost:443", "--listen-host", "::1"], "--listen-host needs --listen PORT"),
            (["connect", "localhost:443", "--max-connections", "1"], "--max-connections needs --listen PORT"),
            (["serve", "--http", "--alpn", "h2"], "the ALPN list may not contain h2"),
            (["serve", "--port", "70000"], "--port must be 0 to 65535"),
            (["serve", "--max-connections", "0"], "--max-connections must be at least 1"),
            (["nosuchcommand"], "Unexpected argument 'nosuchcommand'"),
          ])
    func usageErrors(arguments: [String], message: String) throws {
        let (status, output, errors) = try runTLSCtl(arguments, input: "")
        #expect(status == 2, "\(arguments): \(errors)")
        #expect(errors.contains(message), "\(arguments): \(errors)")
        #expect(output.isEmpty)
    }

    @Test("bad files exit 1 with one line naming the TLSError code", arguments: allBackends)
    func badFiles(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let other = try CertificateFiles(backend, name: "other")
        defer { other.remove() }
        let garbage = try files.file("garbage.pem", "this is not PEM\n")
        let cases: [([String], String)] = [
            (["serve", "--port", "0", "--cert", "/nonexistent/cert.pem", "--key", files.key],
             "tlsctl: badCertificate (\(backend.name): "),
            (["serve", "--port", "0", "--cert", garbage, "--key", files.key], "tlsctl: badCertificate (\(backend.name): "),
            (["serve", "--port", "0", "--cert", files.cert, "--key", garbage], "tlsctl: badPrivateKey (\(backend.name): "),
            (["serve", "--port", "0", "--cert", files.cert, "--key", other.key],
             "tlsctl: keyCertificateMismatch (\(backend.name): "),
            (["serve", "--port", "0", "--ca-file", garbage, "--verify-client", "required"],
             "tlsctl: badCertificate (\(backend.name): "),
            (["connect", "127.0.0.1:9", "--ca-file", "/nonexistent/ca.pem"], "tlsctl: badCertificate (\(backend.name): "),
            (["connect", "127.0.0.1:9", "--ca-file", files.cert, "--cert", files.cert, "--key", other.key],
             "tlsctl: keyCertificateMismatch (\(backend.name): "),
        ]
        for (arguments, prefix) in cases {
            let (status, output, errors) = try runTLSCtl(arguments + ["--backend", backend.name], input: "")
            #expect(status == 1, "\(arguments): \(errors)")
            #expect(lines(errors).count == 1, "\(arguments): \(errors)")
            #expect(errors.hasPrefix(prefix), "\(arguments): \(errors)")
            #expect(!output.contains("listening on"))
        }
    }

    @Test("connect to a closed port exits 1 naming the transport failure", arguments: allBackends)
    func connectionRefused(backend: Backend) throws {
        let (fd, port) = try refusingPort()
        defer { close(fd) }
        let (status, _, errors) = try runTLSCtl(["connect", "127.0.0.1:\(port)", "--backend", backend.name], input: "")
        #expect(status == 1)
        #expect(errors == "tlsctl: transportFailure (\(backend.name): connect to 127.0.0.1:\(port): Connection refused)\n")
    }
}
