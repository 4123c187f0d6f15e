/// Where a ``TLSConnection`` stands: one value, each case carrying exactly what that
/// state needs, so that combinations that mean nothing cannot be written (a pending
/// write before the handshake, close_notify "sent" on a failed handshake…).
///
/// The transport and the role are set-up, not state: they are attached before the
/// handshake and never change afterwards.
enum TLSConnectionState {
    /// No backend session yet. `resuming` is the session given to `setSession(_:)`.
    case idle(resuming: TLSSession?)
    /// The handshake has begun and has not finished.
    case handshaking(any TLSConnectionEngine)
    /// The peer sent close_notify before the handshake completed: every call returns 0
    /// `.zeroReturn` from now on.
    case closedDuringHandshake
    /// The handshake completed.
    case established(Established)
    /// A fatal result: every call repeats `code`, and `error` is the connection's
    /// ``TLSConnection/lastError`` for good (the first failure stays). `established`
    /// keeps the negotiated parameters readable when the failure came after the handshake.
    case failed(TLSResultCode, TLSError, established: Established?)

    /// An established connection: the live engine and the closing and writing state.
    struct Established {
        let engine: any TLSConnectionEngine
        /// Our close_notify: exactly once, and no application data after it began.
        var closeNotify = CloseNotify.notSent
        /// The peer's close_notify arrived (sticky; writing still works: half-close).
        var peerClosed = false
        /// An all-or-nothing write interrupted by want-read/want-write: its length and
        /// how many bytes the engine has already taken.
        var pendingWrite: (length: Int, done: Int)?
    }

    /// Our side of the closing handshake.
    enum CloseNotify: Equatable {
        case notSent
        /// `shutdown()` began but the alert is not flushed yet (want-read/want-write).
        case sending
        case sent
    }

    /// True once the handshake has begun: the role can no longer change.
    var hasBegun: Bool {
        if case .idle = self { return false }
        return true
    }

    /// The established connection, also after a fatal failure that followed it.
    var established: Established? {
        switch self {
        case .established(let established): return established
        case .failed(_, _, let established): return established
        case .idle, .handshaking, .closedDuringHandshake: return nil
        }
    }
}
