import ArgumentParser
import TLSKit
import TLSCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `tlsctl` command: a TLS client (`connect`), a TLS server (`serve`), an in-process
/// demonstration (`demo`) and backend information (`info`), over whichever backend
/// this build compiled in.
///
/// Exit status: 0 success; 1 a TLS, certificate, file or network failure (one line on
/// stderr naming the ``TLSError`` code); 2 a usage error (bad flag or value).
@main
struct TLSCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tlsctl",
        abstract: "A TLS client and server over TLSKit (OpenSSL or GnuTLS).",
        discussion: """
            tlsctl runs over the backend this build chose (the OpenSSL trait by default,
            `--traits GnuTLS` for GnuTLS). With both traits, --backend picks one.

            Exit status: 0 success; 1 a TLS, certificate, file or network failure (one
            line on stderr naming the error code); 2 a usage error.
            """,
        subcommands: [Connect.self, Serve.self, Demo.self, Info.self]
    )

    /// Parses the command line and runs the subcommand, mapping usage errors to exit
    /// status 2 (ArgumentParser's default is 64) and TLS failures to 1.
    static func main() {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitForArgumentError(error)
        }
        do {
            var runnable = command
            try runnable.run()
        } catch {
            exitForArgumentError(error)
        }
        Glibc.exit(0)
    }

    /// Help and version requests exit 0 with their text; usage errors print the
    /// message and usage on stderr and exit 2; anything else is a failure (exit 1).
    private static func exitForArgumentError(_ error: any Error) -> Never {
        if error is TLSError { fail(describe(error)) }
        let code = exitCode(for: error)
        if code == .success || code == .failure {
            exit(withError: error)  // help (stdout, 0) or an ExitCode the command chose
        }
        if code == .validationFailure {
            var standardError = StandardError()
            print(fullMessage(for: error), to: &standardError)
            Glibc.exit(2)
        }
        exit(withError: error)
    }
}

/// Picks a backend by name among the compiled ones.
struct BackendOption: ParsableArguments {
    @Option(name: .long, help: "The backend to use when several are compiled in (OpenSSL or GnuTLS).")
    var backend: String?

    func resolve() throws -> any TLSBackend.Type {
        let available = TLSBuiltInBackends.available
        let wanted = (backend ?? DefaultTLSBackend.id.name).lowercased()
        var names: [String] = []
        for candidate in available {
            let name: String = candidate.id.name
            if name.lowercased() == wanted { return candidate }
            names.append(name)
        }
        throw ValidationError(
            "backend '\(backend ?? "")' is not compiled in; available: \(names.joined(separator: ", "))")
    }
}

/// A TLS version as typed on the command line: `1.2` or `1.3`.
struct VersionArgument: ExpressibleByArgument {
    let version: TLSVersion

    init?(argument: String) {
        switch argument {
        case "1.2": version = .tls12
        case "1.3": version = .tls13
        default: return nil
        }
    }

    static var allValueStrings: [String] { ["1.2", "1.3"] }
}

/// A comma-separated ALPN list such as `h2,http/1.1`.
struct ALPNList: ExpressibleByArgument {
    let protocols: [String]

    init?(argument: String) {
        let names = argument.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 255 }),
              Set(names).count == names.count else { return nil }
        protocols = names
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// Applies the version flags to a configuration; the range is checked here so a
/// reversed range is a usage error rather than a TLS failure.
func applyVersions(_ minimum: VersionArgument?, _ maximum: VersionArgument?,
                   to configuration: inout TLSConfiguration) throws {
    if let minimum { configuration.minimumTLSVersion = minimum.version }
    if let maximum { configuration.maximumTLSVersion = maximum.version }
    if configuration.minimumTLSVersion > configuration.maximumTLSVersion {
        throw ValidationError(
            "--min-version \(configuration.minimumTLSVersion) is above --max-version \(configuration.maximumTLSVersion)")
    }
}

/// Prints one line on stderr and exits 1: the tool's way of reporting a TLS failure.
/// Control characters in the message (peer text) are escaped: one line, no terminal codes.
func fail(_ message: String) -> Never {
    var standardError = StandardError()
    print("tlsctl: \(TLSUntrustedText.escape(message))", to: &standardError)
    Glibc.exit(1)
}

/// Prints one line on stderr, prefixed with `tlsctl: `, control characters escaped.
func log(_ message: String) {
    var standardError = StandardError()
    print("tlsctl: \(TLSUntrustedText.escape(message))", to: &standardError)
}

/// Unbuffered writes to file descriptor 2.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        writeAll(2, Array(string.utf8))
    }
}

/// Writes every byte to a blocking descriptor (stdout, stderr); false if it failed.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { systemWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, 1000)
            continue
        }
        if n <= 0 { return false }
        offset += n
    }
    return true
}

/// Prints a line on stdout and flushes it at once (tests and scripts wait for it).
func printFlushed(_ line: String) {
    writeAll(1, Array((line + "\n").utf8))
}

/// Describes a failure with its category, e.g.
/// `certificate verification failed: hostnameMismatch (OpenSSL: …)` or
/// `alertReceived: certificate_required (GnuTLS: …)`.
func describe(_ error: any Error) -> String {
    guard let error = error as? TLSError else { return "\(error)" }
    if error.code == .certificateVerificationFailed {
        return "certificate verification failed: \(error.verificationFailure ?? .other) (\(error.backend): \(error.message))"
    }
    if error.code == .alertReceived, let alert = error.alert {
        return "\(error.code): \(alert) (\(error.backend): \(error.message))"
    }
    return "\(error.code) (\(error.backend): \(error.message))"
}

/// A `HOST:PORT` argument: a DNS name, an IPv4 address, or a bracketed IPv6 address.
struct Endpoint: ExpressibleByArgument, CustomStringConvertible {
    /// The host without brackets.
    let host: String
    let port: UInt16

    init?(argument: String) {
        guard let parsed = try? Endpoint.parse(argument) else { return nil }
        self = parsed
    }

    init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `name:443`, `192.0.2.1:443` or `[::1]:443`.
    static func parse(_ text: String) throws -> Endpoint {
        let hostPart: Substring, portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("'\(text)': an IPv6 address is written [ADDRESS]:PORT")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ValidationError("'\(text)' has no port: write HOST:PORT")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                throw ValidationError("'\(text)': write an IPv6 address in brackets, [ADDRESS]:PORT")
            }
        }
        guard !hostPart.isEmpty else { throw ValidationError("'\(text)' has no host") }
        guard let port = UInt16(portPart), port > 0 else {
            throw ValidationError("'\(text)': the port must be a number from 1 to 65535")
        }
        return Endpoint(host: String(hostPart), port: port)
    }

    var description: String { Endpoint.format(host: host, port: port) }

    /// `host:port`, with brackets around an IPv6 address.
    static func format(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension TLSBackendID {
    /// What `tlsctl` reports itself (its own sockets, polls and terminal), apart from
    /// the TLS backend and from TLSKit's configuration checks.
    static let tlsctl = TLSBackendID("tlsctl")
}
