/// Chooses the ALPN protocol on a server from the client's offered list.
///
/// Return one of the offered names, or nil to refuse the connection with the fatal
/// `no_application_protocol` alert. Called on the handshake's thread.
public struct TLSApplicationProtocolSelector: Sendable, Hashable {
    private final class Box: Sendable {
        let select: @Sendable ([String]) -> String?
        init(_ select: @escaping @Sendable ([String]) -> String?) { self.select = select }
    }
    private let box: Box

    /// Wraps the selection function.
    public init(_ select: @escaping @Sendable (_ offered: [String]) -> String?) { box = Box(select) }

    /// Runs the selection; a result that was not offered counts as nil.
    @_spi(TLSBackendImplementation) public func select(_ offered: [String]) -> String? {
        guard let chosen = box.select(offered), offered.contains(chosen) else { return nil }
        return chosen
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}
