/// What the result of the last TLS call means: the `SSL_get_error(3)` equivalent.
/// (Not a failure kind: that is ``TLSError/Code``, carried by ``TLSConnection/lastError``.)
///
/// The raw values are OpenSSL's `SSL_ERROR_*` numbers, so logs read the same as
/// OpenSSL's. Obtain one with ``TLSConnection/error(for:)``.
public enum TLSResultCode: Int32, Sendable, Hashable, CustomStringConvertible {
    /// The operation succeeded (`SSL_ERROR_NONE`).
    case none = 0
    /// A protocol, verification or usage failure (`SSL_ERROR_SSL`); ``TLSConnection/lastError`` says which.
    case ssl = 1
    /// The transport must deliver more bytes before the call can progress (`SSL_ERROR_WANT_READ`).
    /// Call again once the socket is readable, or once you have fed the in-memory transport.
    case wantRead = 2
    /// The transport must accept more bytes before the call can progress (`SSL_ERROR_WANT_WRITE`).
    /// Call again once the socket is writable, or once you have drained the in-memory transport.
    case wantWrite = 3
    /// The transport failed (`SSL_ERROR_SYSCALL`); ``TLSConnection/lastError`` keeps the `errno`.
    case syscall = 5
    /// The peer closed the TLS session cleanly with close_notify (`SSL_ERROR_ZERO_RETURN`).
    case zeroReturn = 6
    /// The handshake waits for the answer of the ``TLSCustomVerification`` callback
    /// (`SSL_ERROR_WANT_RETRY_VERIFY`, OpenSSL 3.0's `SSL_set_retry_verify(3)`). No I/O is
    /// needed: call again once the callback's ``TLSVerificationCompletion`` was called —
    /// ``TLSConnection/verificationWakeUp`` says when, and
    /// ``TLSConnection/waitForVerification(timeout:)`` blocks until then. Calls made
    /// before the answer return -1 with this code again.
    case wantRetryVerify = 12
    /// The server's handshake waits for the answer of its ``TLSServerIdentitySelector``
    /// (`SSL_ERROR_WANT_CLIENT_HELLO_CB`, the retry of `SSL_CTX_set_client_hello_cb(3)`).
    /// No I/O is needed: call again once the ``TLSServerIdentityCompletion`` was called —
    /// ``TLSConnection/clientHelloWakeUp`` says when, and
    /// ``TLSConnection/waitForClientHello(timeout:)`` blocks until then.
    case wantClientHello = 11

    public var description: String {
        switch self {
        case .none: return "none"
        case .ssl: return "ssl"
        case .wantRead: return "wantRead"
        case .wantWrite: return "wantWrite"
        case .syscall: return "syscall"
        case .zeroReturn: return "zeroReturn"
        case .wantRetryVerify: return "wantRetryVerify"
        case .wantClientHello: return "wantClientHello"
        }
    }
}
