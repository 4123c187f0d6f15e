/// Receives TLS secrets in the `SSLKEYLOGFILE` format (one line per secret, no newline),
/// so that Wireshark or tshark can decrypt a capture. Anyone holding these lines can read
/// the traffic: use it for debugging only.
public struct TLSKeyLogger: Sendable, Hashable {
    private final class Box: Sendable {
        let log: @Sendable (String) -> Void
        init(_ log: @escaping @Sendable (String) -> Void) { self.log = log }
    }
    private let box: Box

    /// Wraps the logging function.
    public init(_ log: @escaping @Sendable (_ line: String) -> Void) { box = Box(log) }

    /// Passes one line on.
    @_spi(TLSBackendImplementation) public func log(_ line: String) { box.log(line) }

    /// Formats and passes one NSS key-log line: `LABEL <client_random hex> <secret hex>`.
    @_spi(TLSBackendImplementation) public func log(label: String, clientRandom: [UInt8], secret: [UInt8]) {
        box.log("\(label) \(TLSHex.encode(clientRandom)) \(TLSHex.encode(secret))")
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

