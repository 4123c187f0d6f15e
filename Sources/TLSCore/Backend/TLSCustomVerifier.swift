/// The per-connection side of ``TLSCustomVerification`` that a backend drives from its
/// library's verification callback; the rules (ask once, keep the answer across the
/// library's re-runs, the host-name check after an accept) are written here once.
@_spi(TLSBackendImplementation) public final class TLSCustomVerifier {
    /// What the backend's verification callback does next.
    @_spi(TLSBackendImplementation) public enum Outcome {
        /// Accept the certificate (the library goes on).
        case accept
        /// Fail verification with this category and explanation, and send this alert: the
        /// category's (``TLSError/VerificationFailure/alert``), except bad_certificate for
        /// ``TLSError/VerificationFailure/noCertificate`` (the peer did send a certificate;
        /// certificate_required would say otherwise).
        case reject(TLSError.VerificationFailure, String, TLSAlert)
        /// No answer yet: suspend the handshake (OpenSSL `SSL_set_retry_verify`, GnuTLS
        /// `GNUTLS_E_AGAIN` from the verify function) and report ``TLSEngineStatus/wantRetryVerify``.
        case pending
    }

    private let callback: TLSCustomVerification
    private let role: TLSRole
    /// Client role with host-name verification: the name, checked after an accept.
    private let hostnamePolicy: TLSPeerPolicy
    private var completion: TLSVerificationCompletion?
    private var defaultError: TLSError?
    private var peerChain: [[UInt8]] = []
    /// Called by the deciding completion of a pending verification.
    var wakeUp: (@Sendable () -> Void)? {
        didSet { completion?.setWakeUp(wakeUp) }
    }
    /// The chain the callback gave with its accept.
    private(set) var validatedChain: [[UInt8]]?
    /// Once the callback accepted (and the host name passed): whether the host name was
    /// checked. Nil when the callback was not asked (resumed session, no certificate).
    private(set) var acceptedWithHostname: Bool?

    init(callback: TLSCustomVerification, role: TLSRole, hostnamePolicy: TLSPeerPolicy) {
        self.callback = callback
        self.role = role
        self.hostnamePolicy = hostnamePolicy
    }

    /// True between the callback's call and its answer.
    var isPending: Bool { completion != nil && completion?.verdict == nil }

    /// Blocks until a pending answer comes (or `deadline`); true when it is in.
    func waitForAnswer(until deadline: ContinuousClock.Instant?) -> Bool {
        completion?.wait(until: deadline) ?? true
    }

    /// Called by the backend's verification callback, every time the library runs it (it
    /// runs again when the handshake resumes). The first call asks the application; later
    /// calls return its answer.
    /// - Parameters:
    ///   - peerCertificates: the certificates as sent, DER, leaf first.
    ///   - defaultFailure: the backend's own verdict on the chain (without the host name):
    ///     nil when it passed, else the category and the library's explanation.
    @_spi(TLSBackendImplementation) public func evaluate(
        peerCertificates: () -> [[UInt8]],
        defaultFailure: () -> (TLSError.VerificationFailure, String)?,
        backend: TLSBackendID
    ) -> Outcome {
        if completion == nil {
            let certificates = peerCertificates()
            peerChain = certificates
            let failure = defaultFailure()
            defaultError = failure.map {
                TLSError(.certificateVerificationFailed, "certificate verification failed: \($0.1)", backend: backend,
                         verificationFailure: $0.0, alert: $0.0.alert)
            }
            let request = TLSVerificationRequest(peerCertificates: certificates, role: role,
                                                 serverName: hostnamePolicy.hostname, defaultVerificationError: defaultError)
            let completion = TLSVerificationCompletion(wakeUp: wakeUp)
            self.completion = completion
            callback.call(request, completion)
        }
        guard let verdict = completion?.verdict else { return .pending }
        switch verdict {
        case .reject(let failure):
            let detail = defaultError.map { "; TLSKit's own verification said: \($0.message)" }
                ?? "; TLSKit's own verification had accepted it"
            return .reject(failure, "the custom verification callback rejected the peer's certificate (\(failure))" + detail,
                           failure == .noCertificate ? .badCertificate : failure.alert)
        case .accept(let chain):
            validatedChain = chain
            guard hostnamePolicy.checksLeaf else {
                acceptedWithHostname = false
                return .accept
            }
            let leaf = peerChain.first ?? []
            if let (failure, reason) = leaf.withUnsafeBytes({ hostnamePolicy.check(leafDER: $0, sha256: { _ in [] }) }) {
                return .reject(failure, reason + " (checked after the custom verification callback accepted the chain)", failure.alert)
            }
            acceptedWithHostname = true
            return .accept
        }
    }
}
