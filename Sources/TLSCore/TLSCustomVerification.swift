#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A custom verification callback: swift-nio-ssl's `customVerificationCallback`, on every
/// backend. It receives the peer's certificates as sent and what TLSKit's own verification
/// concluded, and answers — at once or later, from any thread — through a one-shot
/// ``TLSVerificationCompletion``. While the answer is pending the handshake returns -1
/// with ``TLSResultCode/wantRetryVerify`` (OpenSSL's `SSL_ERROR_WANT_RETRY_VERIFY`).
///
/// **What the answer decides (NIOSSL's semantics).** The callback *replaces* the chain
/// verdict: TLSKit still verifies the chain (trust roots, validity, signatures, purpose,
/// CRLs, OCSP staple, pins) and passes the outcome as
/// ``TLSVerificationRequest/defaultVerificationError``, but only the callback's answer
/// counts — accept an untrusted chain (a private PKI, SPIFFE), or reject a valid one.
/// To *extend* the default verification instead, reject whenever
/// `defaultVerificationError` is not nil. **Host-name verification is not replaced**: as
/// with NIOSSL (which checks the host name after its custom callback), a client with
/// ``TLSCertificateVerification/fullVerification`` still checks the leaf against the
/// server name after the callback accepts, and fails with
/// ``TLSError/VerificationFailure/hostnameMismatch``; use
/// ``TLSCertificateVerification/noHostnameVerification`` to let the callback judge names.
///
/// When it is called: once per handshake, after the peer's Certificate message, on the
/// thread running the handshake call (inside the library's verification callback: do not
/// call back into the connection from it). Client role: always, unless
/// ``TLSCertificateVerification/insecureNoVerification``. Server role: when a client
/// certificate is requested (``TLSClientAuthentication``) and the client sent one. Not on a
/// resumed session (nothing is sent to verify).
///
/// Set it on ``TLSConfiguration/customVerification`` (every connection of a context, and
/// the blocking ``TLSSocket`` helpers) or per connection on
/// ``TLSConnection/customVerification``. Needs ``TLSCapabilities/customVerification``.
public struct TLSCustomVerification: Sendable, Hashable {
    /// The callback's type: the request, and the completion to call once with the verdict.
    public typealias Callback = @Sendable (_ request: TLSVerificationRequest, _ completion: TLSVerificationCompletion) -> Void

    private final class Box: Sendable {
        let callback: Callback
        init(_ callback: @escaping Callback) { self.callback = callback }
    }
    private let box: Box

    /// Wraps the callback.
    public init(_ callback: @escaping Callback) { box = Box(callback) }

    func call(_ request: TLSVerificationRequest, _ completion: TLSVerificationCompletion) {
        box.callback(request, completion)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

/// What a ``TLSCustomVerification`` callback is asked to judge.
public struct TLSVerificationRequest: Sendable {
    /// The peer's certificates exactly as it sent them: DER, leaf first (NIOSSL's
    /// `[NIOSSLCertificate]` argument). Never empty.
    public let peerCertificates: [[UInt8]]
    /// This side's role: `.client` judges the server, `.server` a client certificate.
    public let role: TLSRole
    /// Client role: the server name TLSKit checks the leaf against after an accept (nil
    /// when host names are not verified). Server role: nil.
    public let serverName: String?
    /// What TLSKit's own verification of the chain concluded — trust roots, validity,
    /// signatures, purpose, CRLs, OCSP staple, pins, not the host name: nil when it passed,
    /// else the error the handshake would have failed with (code
    /// ``TLSError/Code/certificateVerificationFailed``, with its
    /// ``TLSError/verificationFailure`` category and the library's explanation).
    public let defaultVerificationError: TLSError?
}

/// A ``TLSCustomVerification`` callback's answer.
public enum TLSVerificationVerdict: Sendable, Hashable {
    /// The peer's certificate is accepted. `validatedChain` (DER, leaf first) is the chain
    /// the callback verified, if it built one (NIOSSL's `VerificationMetadata`); it is
    /// kept as ``TLSConnection/validatedCertificateChain``. (The client's host-name check,
    /// when configured, still follows: see ``TLSCustomVerification``.)
    case accept(validatedChain: [[UInt8]]? = nil)
    /// The peer's certificate is rejected: the handshake fails with
    /// ``TLSError/Code/certificateVerificationFailed`` and this category, and the peer
    /// receives the category's alert (``TLSError/VerificationFailure/alert``: unknown_ca,
    /// bad_certificate, certificate_expired…), the same on every backend.
    case reject(TLSError.VerificationFailure)
}

/// The one-shot answer channel handed to a ``TLSCustomVerification`` callback. `Sendable`:
/// call it from any thread, inside the callback or later, **once**. A second call is
/// ignored (it returns false): the first answer stands, as with a promise that is already
/// completed, but without a crash.
public final class TLSVerificationCompletion: Sendable {
    let slot: TLSAnswerSlot<TLSVerificationVerdict>

    init(wakeUp: (@Sendable () -> Void)?) { slot = TLSAnswerSlot(wakeUp: wakeUp) }

    /// Gives the verdict. The handshake resumes at the next handshake call.
    /// - Returns: true for the call that decided; false (and nothing changes) when the
    ///   verdict was already given.
    @discardableResult
    public func complete(_ verdict: TLSVerificationVerdict) -> Bool { slot.complete(verdict) }

    /// Same as ``complete(_:)``.
    @discardableResult
    public func callAsFunction(_ verdict: TLSVerificationVerdict) -> Bool { complete(verdict) }

    /// The verdict, once given.
    public var verdict: TLSVerificationVerdict? { slot.answer }

    func setWakeUp(_ handler: (@Sendable () -> Void)?) { slot.setWakeUp(handler) }
    func wait(until deadline: ContinuousClock.Instant?) -> Bool { slot.wait(until: deadline) }
}

/// A one-shot answer given from any thread, with a wake-up for the thread or event loop
/// that waits for it, and a blocking wait: the machinery of the completions handed to
/// application callbacks (custom verification, server identity selection).
final class TLSAnswerSlot<Answer: Sendable>: @unchecked Sendable {
    // @unchecked: every field below is read and written under `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var value: Answer?
    private var wakeUp: (@Sendable () -> Void)?

    init(wakeUp: (@Sendable () -> Void)?) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
        self.wakeUp = wakeUp
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Records the answer unless one is in; calls the wake-up (outside the lock).
    /// True for the call that decided.
    func complete(_ answer: Answer) -> Bool {
        pthread_mutex_lock(mutex)
        guard value == nil else {
            pthread_mutex_unlock(mutex)
            return false
        }
        value = answer
        let wake = wakeUp
        wakeUp = nil
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        wake?()
        return true
    }

    /// The answer, once given.
    var answer: Answer? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return value
    }

    /// Replaces the wake-up called by the deciding ``complete(_:)``; calls it at once when
    /// the answer is already in.
    func setWakeUp(_ handler: (@Sendable () -> Void)?) {
        pthread_mutex_lock(mutex)
        let answered = value != nil
        if !answered { wakeUp = handler }
        pthread_mutex_unlock(mutex)
        if answered { handler?() }
    }

    /// Blocks until the answer is given, or until `deadline`. True once it is in.
    func wait(until deadline: ContinuousClock.Instant?) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while value == nil {
            guard let deadline else {
                pthread_cond_wait(condition, mutex)
                continue
            }
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { return false }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let (seconds, attoseconds) = left.components
            var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
            var target = timespec(tv_sec: now.tv_sec + Int(seconds) + nanoseconds / 1_000_000_000, tv_nsec: 0)
            nanoseconds %= 1_000_000_000
            target.tv_nsec = nanoseconds
            pthread_cond_timedwait(condition, mutex, &target)
        }
        return true
    }
}
