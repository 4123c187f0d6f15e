/// A server callback that chooses the identity (certificate chain and key) for each
/// connection from what the client's ClientHello offers — Go's `GetCertificate`, rustls's
/// `ResolvesServerCert` — and may answer later (a lookup in a store, an ACME order in
/// flight), on every backend.
///
/// TLSKit reads the ClientHello itself, before the backend's library sees a byte of it,
/// so the callback gets the same ``TLSClientHello`` on every backend; it answers once,
/// through a one-shot ``TLSServerIdentityCompletion``:
///
/// - ``TLSServerIdentityChoice/credentials(_:)``: these identities (several key types may
///   be given: the library picks by the client's signature algorithms, as with
///   ``TLSConfiguration/additionalCredentials``). Each set is loaded once per context and
///   kept (up to 64 sets), so returning the same values again costs no parsing.
/// - ``TLSServerIdentityChoice/defaultIdentity``: the configuration's own identities
///   (``TLSConfiguration/certificateChain``, ``TLSConfiguration/serverNameCredentials``).
/// - ``TLSServerIdentityChoice/refuse(_:)``: the handshake fails with
///   ``TLSError/Code/handshakeRefused`` and the client receives the named alert
///   (`unrecognized_name`, `handshake_failure`, `access_denied`…).
///
/// While the answer is pending the handshake returns -1 with
/// ``TLSResultCode/wantClientHello`` (OpenSSL's `SSL_ERROR_WANT_CLIENT_HELLO_CB`, the
/// `SSL_CLIENT_HELLO_RETRY` of `SSL_CTX_set_client_hello_cb(3)`): no I/O is needed; call
/// the handshake again once ``TLSConnection/clientHelloWakeUp`` fires (or after
/// ``TLSConnection/waitForClientHello(timeout:)``). ``TLSSocket`` and TLSKitNIO do this
/// for you.
///
/// A callback that throws fails the handshake (``TLSError/Code/handshakeRefused``, alert
/// `internal_error`), as does an identity that cannot be loaded. A ClientHello that TLSKit
/// cannot parse fails with ``TLSError/Code/protocolFailure`` and `decode_error` before the
/// callback is asked. The callback runs on the thread of the handshake call; it is not
/// asked again on a HelloRetryRequest's second ClientHello. Needs
/// ``TLSCapabilities/serverIdentitySelection``.
public struct TLSServerIdentitySelector: Sendable, Hashable {
    /// The callback's type: what the client offers, and the completion to call once.
    public typealias Callback = @Sendable (_ clientHello: TLSClientHello, _ completion: TLSServerIdentityCompletion) throws -> Void

    private final class Box: Sendable {
        let callback: Callback
        init(_ callback: @escaping Callback) { self.callback = callback }
    }
    private let box: Box

    /// Wraps the callback.
    public init(_ callback: @escaping Callback) { box = Box(callback) }

    /// A selector that answers at once: `choose` returns the choice, or throws.
    public static func immediate(_ choose: @escaping @Sendable (TLSClientHello) throws -> TLSServerIdentityChoice) -> Self {
        Self { hello, completion in completion.complete(try choose(hello)) }
    }

    func call(_ hello: TLSClientHello, _ completion: TLSServerIdentityCompletion) throws {
        try box.callback(hello, completion)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.box === rhs.box }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(box)) }
}

/// A ``TLSServerIdentitySelector``'s answer.
public enum TLSServerIdentityChoice: Sendable, Hashable {
    /// The configuration's own identities (primary, additional, and by SNI).
    case defaultIdentity
    /// These identities for this connection. Not empty.
    case credentials([TLSCredential])
    /// No handshake: the client receives this fatal alert.
    case refuse(TLSAlert)
}

/// The one-shot answer channel handed to a ``TLSServerIdentitySelector``. `Sendable`: call
/// it from any thread, inside the callback or later, **once**; a second call is ignored
/// (it returns false).
public final class TLSServerIdentityCompletion: Sendable {
    let slot: TLSAnswerSlot<Result<TLSServerIdentityChoice, TLSError>>

    init(wakeUp: (@Sendable () -> Void)?) { slot = TLSAnswerSlot(wakeUp: wakeUp) }

    /// Gives the choice. The handshake resumes at the next handshake call.
    /// - Returns: true for the call that decided; false when an answer was already given.
    @discardableResult
    public func complete(_ choice: TLSServerIdentityChoice) -> Bool { slot.complete(.success(choice)) }

    /// Fails the handshake with this error (the client receives `internal_error`): what a
    /// lookup that failed later reports.
    @discardableResult
    public func fail(_ error: any Error) -> Bool {
        slot.complete(.failure(TLSServerIdentityCompletion.wrap(error)))
    }

    /// Same as ``complete(_:)``.
    @discardableResult
    public func callAsFunction(_ choice: TLSServerIdentityChoice) -> Bool { complete(choice) }

    /// The answer, once given.
    public var choice: TLSServerIdentityChoice? {
        if case .success(let choice)? = slot.answer { return choice }
        return nil
    }

    static func wrap(_ error: any Error) -> TLSError {
        if let error = error as? TLSError {
            return TLSError(.handshakeRefused, "the server identity selector failed: \(error.message)",
                            backend: error.backend, alert: .internalError)
        }
        return TLSError(.handshakeRefused, "the server identity selector failed: \(error)", backend: .tlsKit,
                        alert: .internalError)
    }
}

/// What a client's ClientHello offers, as TLSKit read it from the wire: the same on
/// every backend. Every string in it comes from the network: escape it
/// (``TLSUntrustedText``) before printing it.
public struct TLSClientHello: Sendable, Hashable {
    /// The host name the client asked for (SNI), if any.
    public let serverName: String?
    /// The ALPN protocols offered, in the client's order (empty: no ALPN).
    public let applicationProtocols: [String]
    /// The signature algorithms offered, in the client's order (empty: the extension
    /// was absent, which only a TLS 1.2 client may do).
    public let signatureSchemes: [TLSSignatureScheme]
    /// The versions TLSKit speaks that the client offers, highest first.
    public let supportedVersions: [TLSVersion]
    /// The cipher suites offered (code points), in the client's order.
    public let cipherSuites: [UInt16]
    /// The key-exchange groups offered (code points), in the client's order.
    public let supportedGroups: [UInt16]

    /// Creates a summary (for tests of a selector).
    public init(serverName: String? = nil, applicationProtocols: [String] = [], signatureSchemes: [TLSSignatureScheme] = [],
                supportedVersions: [TLSVersion] = [.tls13, .tls12], cipherSuites: [UInt16] = [], supportedGroups: [UInt16] = []) {
        self.serverName = serverName
        self.applicationProtocols = applicationProtocols
        self.signatureSchemes = signatureSchemes
        self.supportedVersions = supportedVersions
        self.cipherSuites = cipherSuites
        self.supportedGroups = supportedGroups
    }

    init(_ wire: TLSWire.ClientHello) {
        let versions: [TLSVersion] = TLSVersion.allCases.reversed().filter {
            wire.offersVersion(in: UInt16($0.rawValue)...UInt16($0.rawValue))
        }
        self.init(serverName: wire.serverName, applicationProtocols: wire.applicationProtocols ?? [],
                  signatureSchemes: (wire.signatureSchemes ?? []).map(TLSSignatureScheme.init(rawValue:)),
                  supportedVersions: versions, cipherSuites: wire.cipherSuites, supportedGroups: wire.supportedGroups ?? [])
    }

    /// The offered suites TLSKit names (``TLSCipherSuite/all``), in the client's order.
    public var namedCipherSuites: [TLSCipherSuite] {
        cipherSuites.compactMap { code in TLSCipherSuite.all.first { $0.codePoint == code } }
    }

    /// The offered groups TLSKit names (``TLSGroup/all``), in the client's order.
    public var namedGroups: [TLSGroup] {
        supportedGroups.compactMap { code in TLSGroup.all.first { $0.codePoint == code } }
    }

    /// True when the client accepts an ECDSA signature from the server: it lists an
    /// ECDSA scheme, or (TLS 1.2 without signature_algorithms) offers an ECDSA suite.
    public var acceptsECDSA: Bool {
        if !signatureSchemes.isEmpty { return signatureSchemes.contains { $0.isECDSA } }
        return namedCipherSuites.contains { $0.name.contains("_ECDSA_") }
    }
}

/// A TLS signature scheme (RFC 8446 §4.2.3), by its code point.
public struct TLSSignatureScheme: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The two-byte code point.
    public let rawValue: UInt16
    /// Wraps a code point.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// `rsa_pkcs1_sha256`.
    public static let rsaPKCS1SHA256 = Self(rawValue: 0x0401)
    /// `rsa_pkcs1_sha384`.
    public static let rsaPKCS1SHA384 = Self(rawValue: 0x0501)
    /// `rsa_pkcs1_sha512`.
    public static let rsaPKCS1SHA512 = Self(rawValue: 0x0601)
    /// `ecdsa_secp256r1_sha256`.
    public static let ecdsaSecp256r1SHA256 = Self(rawValue: 0x0403)
    /// `ecdsa_secp384r1_sha384`.
    public static let ecdsaSecp384r1SHA384 = Self(rawValue: 0x0503)
    /// `ecdsa_secp521r1_sha512`.
    public static let ecdsaSecp521r1SHA512 = Self(rawValue: 0x0603)
    /// `rsa_pss_rsae_sha256`.
    public static let rsaPSSRSAESHA256 = Self(rawValue: 0x0804)
    /// `rsa_pss_rsae_sha384`.
    public static let rsaPSSRSAESHA384 = Self(rawValue: 0x0805)
    /// `rsa_pss_rsae_sha512`.
    public static let rsaPSSRSAESHA512 = Self(rawValue: 0x0806)
    /// `ed25519`.
    public static let ed25519 = Self(rawValue: 0x0807)
    /// `ed448`.
    public static let ed448 = Self(rawValue: 0x0808)
    /// `rsa_pss_pss_sha256`.
    public static let rsaPSSPSSSHA256 = Self(rawValue: 0x0809)
    /// `rsa_pss_pss_sha384`.
    public static let rsaPSSPSSSHA384 = Self(rawValue: 0x080a)
    /// `rsa_pss_pss_sha512`.
    public static let rsaPSSPSSSHA512 = Self(rawValue: 0x080b)

    private static let names: [UInt16: String] = [
        0x0201: "rsa_pkcs1_sha1", 0x0203: "ecdsa_sha1",
        0x0401: "rsa_pkcs1_sha256", 0x0501: "rsa_pkcs1_sha384", 0x0601: "rsa_pkcs1_sha512",
        0x0403: "ecdsa_secp256r1_sha256", 0x0503: "ecdsa_secp384r1_sha384", 0x0603: "ecdsa_secp521r1_sha512",
        0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
        0x0807: "ed25519", 0x0808: "ed448",
        0x0809: "rsa_pss_pss_sha256", 0x080a: "rsa_pss_pss_sha384", 0x080b: "rsa_pss_pss_sha512",
    ]

    /// The RFC 8446 name (`ecdsa_secp256r1_sha256`), or `0x…` for a code point TLSKit
    /// does not name.
    public var description: String {
        Self.names[rawValue] ?? "0x" + String(rawValue, radix: 16)
    }

    /// An ECDSA scheme (`ecdsa_*`).
    public var isECDSA: Bool { rawValue & 0x00ff == 0x03 }
    /// An RSA scheme (PKCS #1 v1.5 or PSS).
    public var isRSA: Bool { rawValue & 0x00ff == 0x01 || (0x0804...0x0806).contains(rawValue) || (0x0809...0x080b).contains(rawValue) }
}

/// The per-connection side of a ``TLSServerIdentitySelector``: it collects the first
/// ClientHello from the transport before the backend reads anything, asks the selector,
/// and gives the backend the chosen identity; then the collected bytes are read by the
/// backend as if they had just arrived.
final class TLSClientHelloGate {
    enum Phase {
        /// Reading records until the ClientHello message is whole.
        case collecting
        /// The selector was asked; waiting for its answer.
        case waiting(TLSServerIdentityCompletion)
        /// The answer was applied (or there was nothing to select): the backend runs.
        case settled
    }

    /// What one step of the gate asks the connection to do.
    enum Step {
        /// Nothing more to do here: run the backend's handshake.
        case proceed
        /// More bytes are needed (the transport would block): -1 want-read.
        case wantRead
        /// The selector has not answered: -1 want-client-hello.
        case wantAnswer
        /// The ClientHello was the selector's to judge, and this is the outcome.
        case answered(Result<TLSServerIdentityChoice, TLSError>)
        /// The bytes cannot be a ClientHello: fail with this violation.
        case malformed(TLSWireViolation)
    }

    private let selector: TLSServerIdentitySelector
    private(set) var phase = Phase.collecting
    private var collected: [UInt8] = []
    /// Called by the deciding completion of a pending answer.
    var wakeUp: (@Sendable () -> Void)? {
        didSet { if case .waiting(let completion) = phase { completion.slot.setWakeUp(wakeUp) } }
    }

    init(selector: TLSServerIdentitySelector) { self.selector = selector }

    var isPending: Bool {
        if case .waiting(let completion) = phase { return completion.slot.answer == nil }
        return false
    }

    func waitForAnswer(until deadline: ContinuousClock.Instant?) -> Bool {
        if case .waiting(let completion) = phase { return completion.slot.wait(until: deadline) }
        return true
    }

    /// One step: reads what the transport has (never more than the first ClientHello's
    /// records need), asks the selector once the ClientHello is whole, reports its answer.
    func advance(_ transport: TLSTransportIO) -> Step {
        switch phase {
        case .settled:
            return .proceed
        case .waiting(let completion):
            guard let answer = completion.slot.answer else { return .wantAnswer }
            return .answered(answer)
        case .collecting:
            while true {
                switch parse() {
                case .hello(let hello):
                    let completion = TLSServerIdentityCompletion(wakeUp: wakeUp)
                    phase = .waiting(completion)
                    do {
                        try selector.call(TLSClientHello(hello), completion)
                    } catch {
                        completion.fail(error)
                    }
                    guard let answer = completion.slot.answer else { return .wantAnswer }
                    return .answered(answer)
                case .malformed(let violation):
                    return .malformed(violation)
                case .needBytes(let count):
                    var chunk = [UInt8](repeating: 0, count: count)
                    let result = chunk.withUnsafeMutableBytes { transport.readAhead(into: $0) }
                    switch result {
                    case .transferred(let n):
                        collected += chunk[0..<n]
                    case .wouldBlock:
                        return .wantRead
                    case .endOfStream, .failed:
                        // The backend meets the same end or failure on its first read,
                        // after the bytes that came before it: what happens without a
                        // selector.
                        settle(transport)
                        return .proceed
                    }
                }
            }
        }
    }

    /// Hands the collected bytes back to the transport, for the backend to read; the gate
    /// is done.
    func settle(_ transport: TLSTransportIO) {
        transport.pushBack(collected)
        collected = []
        phase = .settled
    }

    private enum Parsed {
        case hello(TLSWire.ClientHello)
        case needBytes(Int)
        case malformed(TLSWireViolation)
    }

    /// Walks the collected handshake records: the first ClientHello, or how many more
    /// bytes the next record needs.
    private func parse() -> Parsed {
        var message: [UInt8] = []
        var index = 0
        while true {
            guard collected.count - index >= TLSWire.recordHeaderLength else {
                return .needBytes(TLSWire.recordHeaderLength - (collected.count - index))
            }
            guard let header = TLSWire.recordHeader(collected[index..<index + TLSWire.recordHeaderLength]) else {
                return .malformed(TLSWireViolation(.unexpectedMessage, "bytes that are not a TLS record where a ClientHello was due"))
            }
            if let violation = TLSWire.validate(header, maxLength: TLSWire.maxPlaintextLength) { return .malformed(violation) }
            guard header.type == TLSWire.ContentType.handshake.rawValue, header.length > 0 else {
                return .malformed(TLSWireViolation(.unexpectedMessage, "a record of type \(header.type) where a ClientHello was due"))
            }
            let bodyStart = index + TLSWire.recordHeaderLength
            guard collected.count - bodyStart >= header.length else {
                return .needBytes(header.length - (collected.count - bodyStart))
            }
            message += collected[bodyStart..<bodyStart + header.length]
            index = bodyStart + header.length
            guard message.count >= 4 else { continue }
            guard message[0] == 1 else {
                return .malformed(TLSWireViolation(.unexpectedMessage, "handshake message \(message[0]) where a ClientHello was due"))
            }
            let length = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
            if let violation = TLSWire.validateHandshakeHeader(type: 1, length: length) { return .malformed(violation) }
            guard message.count >= 4 + length else { continue }
            let hello = message[4..<4 + length].withUnsafeBytes { TLSWire.clientHello($0) }
            guard let hello else { return .malformed(TLSWireViolation(.decodeError, "a malformed ClientHello")) }
            return .hello(hello)
        }
    }
}
