import ArgumentParser
import TLSKit
#if canImport(Glibc)
import Glibc
#endif

@main
struct TLSCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tlsctl",
        abstract: "Try TLSKit: handshakes, backend information.",
        discussion: """
            tlsctl runs over the backend this build chose (the OpenSSL trait by default,
            `--traits GnuTLS` for GnuTLS). With both traits, --backend picks one.
            """,
        subcommands: [Demo.self, Info.self]
    )
}

/// Picks a backend by name among the compiled ones.
struct BackendOption: ParsableArguments {
    @Option(name: .long, help: "The backend to use when several are compiled in (OpenSSL or GnuTLS).")
    var backend: String?

    func resolve() throws -> any TLSBackend.Type {
        let available = TLSBackends.available
        let wanted = (backend ?? DefaultTLSBackend.name).lowercased()
        var names: [String] = []
        for candidate in available {
            let name: String = candidate.name
            if name.lowercased() == wanted { return candidate }
            names.append(name)
        }
        throw ValidationError(
            "backend '\(backend ?? "")' is not compiled in; available: \(names.joined(separator: ", "))")
    }
}

/// Prints one line on stderr and exits 1: the tool's way of reporting a TLS failure.
func fail(_ message: String) -> Never {
    var standardError = StandardError()
    print("tlsctl: \(message)", to: &standardError)
    exit(1)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// Describes a failure with its category, e.g. `certificate verification failed: hostnameMismatch (…)`.
func describe(_ error: any Error) -> String {
    guard let error = error as? TLSError else { return "\(error)" }
    if error.code == .certificateVerificationFailed {
        return "certificate verification failed: \(error.verificationFailure ?? .other) (\(error.backend): \(error.message))"
    }
    return "\(error.code) (\(error.backend): \(error.message))"
}
