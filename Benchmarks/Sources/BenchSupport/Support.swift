// Helpers shared by bench-tlskit and bench-nio: arguments, clocks, memory and
// allocation readings (from BenchCommon, the same C code the C programs use), the
// output line, and a ServerHello parser that tells which key-exchange group was used.
@_exported import BenchCommon

/// `--name value` options after the scenario name.
public struct BenchArguments: Sendable {
    /// The scenario: `handshake`, `resume`, `bulk` or `idle`.
    public let scenario: String
    private let options: [String: String]

    /// Parses `CommandLine.arguments`.
    public init() {
        let arguments = CommandLine.arguments
        scenario = arguments.count > 1 ? arguments[1] : ""
        var options: [String: String] = [:]
        var index = 2
        while index + 1 < arguments.count {
            if arguments[index].hasPrefix("--") { options[String(arguments[index].dropFirst(2))] = arguments[index + 1] }
            index += 2
        }
        self.options = options
    }

    /// The value of `--name`, or `fallback`.
    public subscript(_ name: String, default fallback: String) -> String { options[name] ?? fallback }
    /// The integer value of `--name`, or `fallback`.
    public func int(_ name: String, default fallback: Int) -> Int { options[name].flatMap { Int($0) } ?? fallback }
    /// True for `--transport memory` (the default).
    public var inMemory: Bool { self["transport", default: "memory"] == "memory" }
    /// `DIR/KIND.crt`, `DIR/KIND.key` and the issuing CA `DIR/KIND-ca.crt` for
    /// `--certs DIR --key KIND`.
    public var certificatePaths: (certificate: String, key: String, ca: String) {
        let directory = self["certs", default: "certs"], kind = self["key", default: "ecdsa"]
        return ("\(directory)/\(kind).crt", "\(directory)/\(kind).key", "\(directory)/\(kind)-ca.crt")
    }
}

/// Seconds on the monotonic clock.
public func benchNow() -> Double { bench_now() }

/// Allocations counted by the LD_PRELOAD counter so far; nil when it is not loaded.
public func allocationCount() -> Double? {
    let count = bench_alloc_count()
    return count < 0 ? nil : count
}

/// Prints the one result line every benchmark program prints.
public func report(result: String, unit: String, _ fields: [(String, String)] = []) {
    var line = "result=\(result) unit=\(unit)"
    for (name, value) in fields { line += " \(name)=\(value)" }
    print(line)
    fflush(nil)
}

/// Formats a rate with one decimal.
public func formatted(_ value: Double, decimals: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}

/// Allocations per operation between two readings, or nil without the counter.
public func allocationsPerOperation(_ before: Double?, _ after: Double?, operations: Int) -> (String, String)? {
    guard let before, let after else { return nil }
    return ("allocs_per_op", formatted((after - before) / Double(operations), decimals: 2))
}

/// Stops the program with a message (a benchmark that cannot do its work must not
/// print a number).
public func benchFail(_ message: String) -> Never {
    let line = "benchmark failed: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(1)
}

/// The cipher suite of a server's first flight (the ServerHello), read from the bytes
/// on the wire: the way to know what a library that does not report it negotiated.
public func cipherSuite(inServerFlight bytes: [UInt8]) -> String {
    // Record header (5), handshake header (4), version (2), random (32), session id.
    guard bytes.count > 44, bytes[0] == 22, bytes[5] == 2 else { return "unknown" }
    let index = 44 + Int(bytes[43])
    guard index + 2 <= bytes.count else { return "unknown" }
    switch Int(bytes[index]) << 8 | Int(bytes[index + 1]) {
    case 0x1301: return "TLS_AES_128_GCM_SHA256"
    case 0x1302: return "TLS_AES_256_GCM_SHA384"
    case 0x1303: return "TLS_CHACHA20_POLY1305_SHA256"
    case let other: return "0x" + String(other, radix: 16)
    }
}

/// The key-exchange group in a server's first flight (TLS 1.3 ServerHello key_share),
/// read from the bytes on the wire; "HRR:<group>" for a HelloRetryRequest.
public func keyShareGroup(inServerFlight bytes: [UInt8]) -> String {
    // Record header (5), handshake header (4), version (2), random (32).
    guard bytes.count > 44, bytes[0] == 22, bytes[5] == 2 else { return "unknown" }
    let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]
    let isRetry = Array(bytes[11..<43]) == helloRetryRandom
    var index = 43
    guard index < bytes.count else { return "unknown" }
    index += 1 + Int(bytes[index])  // session id
    index += 3                       // cipher suite, compression
    guard index + 2 <= bytes.count else { return "unknown" }
    let end = min(bytes.count, index + 2 + (Int(bytes[index]) << 8 | Int(bytes[index + 1])))
    index += 2
    while index + 4 <= end {
        let type = Int(bytes[index]) << 8 | Int(bytes[index + 1])
        let length = Int(bytes[index + 2]) << 8 | Int(bytes[index + 3])
        if type == 51, index + 6 <= end {
            let group = Int(bytes[index + 4]) << 8 | Int(bytes[index + 5])
            let name: String
            switch group {
            case 0x1D: name = "X25519"
            case 0x17: name = "SECP256R1"
            case 0x18: name = "SECP384R1"
            case 0x19: name = "SECP521R1"
            case 0x1E: name = "X448"
            case 0x11EC: name = "X25519MLKEM768"
            default: name = "0x" + String(group, radix: 16)
            }
            return isRetry ? "HRR:" + name : name
        }
        index += 4 + length
    }
    return "none"
}

#if canImport(Glibc)
@_exported import Glibc
#endif
