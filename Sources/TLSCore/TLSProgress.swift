/// Where a non-blocking handshake stands.
public enum TLSProgress: Sendable, Hashable {
    /// The handshake is complete.
    case complete
    /// Call again once the transport has bytes to read.
    case wantRead
    /// Call again once the transport can take bytes.
    case wantWrite
    /// Call again once the custom verification callback has answered
    /// (``TLSResultCode/wantRetryVerify``; see ``TLSConnection/verificationWakeUp``).
    case wantRetryVerify
    /// Call again once the server identity selector has answered
    /// (``TLSResultCode/wantClientHello``; see ``TLSConnection/clientHelloWakeUp``).
    case wantClientHello
}

extension TLSConnection {
    /// One handshake step in Swift style: the role must be set (or use ``TLSSocket``).
    /// - Returns: ``TLSProgress/complete`` when done, or what the transport needs first.
    /// - Throws: ``TLSError`` on failure; ``TLSError/Code/closedByPeer`` when the peer
    ///   closed the session cleanly during the handshake.
    public func handshake() throws -> TLSProgress {
        let result = doHandshake()
        if result == 1 { return .complete }
        switch error(for: result) {
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .wantRetryVerify: return .wantRetryVerify
        case .wantClientHello: return .wantClientHello
        case .zeroReturn:
            throw TLSError(.closedByPeer, "the peer closed the session (close_notify) during the handshake",
                           backend: context.backendID)
        case .none, .ssl, .syscall:
            throw lastError ?? TLSError(.internalError, "handshake failed with result \(result)",
                                        backend: context.backendID)
        }
    }
}
