/// Receives TLS secrets in the `SSLKEYLOGFILE` format (one line per secret, no newline),
/// so that Wireshark or tshark can decrypt a capture. Anyone holding these lines can read
/// the traffic: use it for debugging only.
public struct TLSKeyLogger: Sendable, Hashable {
    final class Box: Sendable {
        let log: @Sendable (String) -> Void
        init(_ log: @escaping @Sendable (String) -> Void) { self.log = log }
    }
    let box: Box

    /// Wraps the logging function.
    public init(_ log: @escaping @Sendable (_ line: String) -> Void) { box = Box(log) }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

