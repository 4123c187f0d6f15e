/// Chooses the ALPN protocol on a server from the client's offered list.
///
/// Return one of the offered names, or nil to refuse the connection with the fatal
/// `no_application_protocol` alert. Called on the handshake's thread.
public struct TLSApplicationProtocolSelector: Sendable, Hashable {
    final class Box: Sendable {
        let select: @Sendable ([String]) -> String?
        init(_ select: @escaping @Sendable ([String]) -> String?) { self.select = select }
    }
    let box: Box

    /// Wraps the selection function.
    public init(_ select: @escaping @Sendable (_ offered: [String]) -> String?) { box = Box(select) }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}
