/// Follows the peer's byte stream record by record, as the backend's library reads it,
/// and checks what one library checks early and the other late (or not at all):
/// record headers, the headers of unprotected handshake messages, and plaintext alerts
/// where RFC 8446 §5/§6 (and RFC 5246 §7.1 after ChangeCipherSpec) require protected
/// ones. The first violation is kept (``violation``) and reading stops there:
/// ``TLSConnection`` then fails at once with ``TLSError/Code/protocolFailure`` and
/// the violation's fatal alert, whether the library had noticed or was still waiting.
///
/// The peer's direction counts as protected once the peer has sent ChangeCipherSpec or
/// application_data (a TLS 1.3 peer's encrypted records), or, for a client, once the
/// server's TLS 1.3 ServerHello (not a HelloRetryRequest) has been read. Before that
/// a plaintext alert is the peer's word (it may have failed before having keys).
@_spi(TLSBackendImplementation) public struct TLSWireReader: Sendable {
    /// Our role; set before the first byte (the server reads ClientHellos, the client
    /// reads ServerHellos).
    public var role: TLSRole = .client
    /// The first violation found; nothing is read after it.
    public private(set) var violation: TLSWireViolation?
    /// (level, description) of the last complete record if it was an unprotected
    /// 2-byte alert read while the peer's direction was still unprotected.
    public private(set) var lastPlaintextAlert: (level: UInt8, description: UInt8)?
    /// True once the peer's records are protected (see the type's description).
    public private(set) var peerProtected = false
    /// True once a client has read a TLS 1.3 ServerHello.
    public private(set) var isTLS13 = false

    /// The record header as it arrives: its bytes so far, big-endian, and how many.
    /// Integers rather than an array: nothing is allocated per record.
    private var header: UInt64 = 0
    private var headerCount = 0
    private var recordType: UInt8 = 0
    private var remaining = 0
    private var alertBody: [UInt8] = []
    /// The current handshake message: its 4-byte header as it arrives, bytes left, and
    /// (a client's ServerHello only) its body.
    private var messageHeader: UInt32 = 0
    private var messageHeaderCount = 0
    private var messageRemaining = 0
    private var messageType: UInt8 = 0
    private var messageBody: [UInt8] = []
    /// A client has read a ServerHello that is not a HelloRetryRequest.
    private var sawServerHello = false
    /// Unprotected warning alerts in a row (any other record resets the count).
    private var warningsInARow = 0
    /// The peer's last record was a (TLS 1.2) ChangeCipherSpec: its Finished comes next.
    private var afterChangeCipherSpec = false

    /// The most unprotected warning alerts in a row a peer may send during the handshake;
    /// the next one is refused with unexpected_message (OpenSSL's `MAX_WARN_ALERT_COUNT`
    /// of 5: "too many warn alerts"). A peer that sends only warnings makes no progress.
    public static let maxWarningsInARow = 4

    public init(role: TLSRole = .client) { self.role = role }

    /// The handshake is complete: every record from the peer is protected from now on,
    /// under `version`.
    public mutating func handshakeCompleted(version: TLSVersion?) {
        peerProtected = true
        isTLS13 = version == .tls13
        lastPlaintextAlert = nil
    }

    /// Reads the next bytes of the peer's stream.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count, violation == nil {
            if remaining == 0 && headerCount < TLSWire.recordHeaderLength {
                header = header << 8 | UInt64(bytes[index])
                headerCount += 1
                index += 1
                if headerCount == TLSWire.recordHeaderLength { startRecord() }
                continue
            }
            let take = min(remaining, bytes.count - index)
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)])
            index += take
            remaining -= take
            body(chunk)
            if remaining == 0 { endRecord() }
        }
    }

    private mutating func startRecord() {
        let parsed = TLSWire.RecordHeader(type: UInt8(truncatingIfNeeded: header >> 32),
                                          version: UInt16(truncatingIfNeeded: header >> 16),
                                          length: Int(header & 0xFFFF))
        header = 0
        headerCount = 0
        recordType = parsed.type
        remaining = parsed.length
        alertBody.removeAll(keepingCapacity: true)
        // An application_data record is always protected: before the peer's direction is
        // known to be, it is a TLS 1.3 peer's first encrypted record (its handshake
        // flight, or a record that decrypts to something not allowed yet), whose limit is
        // the TLS 1.3 ciphertext limit, padding included (RFC 8446 §5.2), not 2^14.
        let isApplicationData = parsed.type == TLSWire.ContentType.applicationData.rawValue
        let protectedRecord = isApplicationData
            || peerProtected && !isTLS13 && parsed.type != TLSWire.ContentType.changeCipherSpec.rawValue
        let limit = !protectedRecord ? TLSWire.maxPlaintextLength
            : isTLS13 || !peerProtected ? TLSWire.maxTLS13CiphertextLength : TLSWire.maxCiphertextLength
        if let problem = TLSWire.validate(parsed, maxLength: limit) { return fail(problem) }
        if parsed.length == 0 && !protectedRecord {  // (application_data is always "protected")
            // RFC 8446 §5.1, RFC 5246 §6.2.1: never a zero-length handshake, alert or
            // ChangeCipherSpec fragment. GnuTLS refuses the first; libssl skips 32 first.
            return fail(TLSWireViolation(.unexpectedMessage, "an empty record of content type \(parsed.type)"))
        }
        if parsed.type != TLSWire.ContentType.alert.rawValue { warningsInARow = 0 }
        if afterChangeCipherSpec {
            afterChangeCipherSpec = false
            // RFC 5246 §7.1: the Finished immediately follows ChangeCipherSpec. A
            // protected alert there (close_notify included) is libssl's "data between ccs
            // and finished"; GnuTLS took it as the peer's word. (A 2-byte one cannot be
            // protected: bad_record_mac, below.)
            if parsed.type == TLSWire.ContentType.alert.rawValue && parsed.length > 2 {
                return fail(TLSWireViolation(.unexpectedMessage,
                    "an alert between its ChangeCipherSpec and its Finished (RFC 5246 §7.1)"))
            }
        }
        switch TLSWire.ContentType(rawValue: parsed.type)! {
        case .alert where peerProtected && isTLS13:
            // TLS 1.3 protects every alert as application_data (OpenSSL: "bad record type").
            return fail(TLSWireViolation(.unexpectedMessage,
                "an unprotected alert record after the peer's records became protected (RFC 8446 §5)"))
        case .alert where peerProtected && parsed.length == 2:
            // A TLS 1.2 protected alert is longer than its 2 plaintext bytes: this one
            // cannot be decrypted (OpenSSL: "decryption failed or bad record mac").
            return fail(TLSWireViolation(.badRecordMAC,
                "an unprotected alert record after the peer's ChangeCipherSpec (RFC 5246 §7.1)"))
        case .handshake where peerProtected && isTLS13:
            return fail(TLSWireViolation(.unexpectedMessage,
                "an unprotected handshake record after the TLS 1.3 ServerHello (RFC 8446 §5)"))
        case .applicationData:
            // Before the handshake ends only a TLS 1.3 peer sends application_data
            // records (its encrypted flight).
            if !peerProtected { isTLS13 = true }
            peerProtected = true
        case .changeCipherSpec:
            // A TLS 1.2 peer protects what follows. A client ignores the server's TLS 1.3
            // compatibility CCS that may follow a HelloRetryRequest (a plaintext
            // ServerHello comes next); a TLS 1.3 client sends it just before its first
            // protected flight.
            if role == .server || sawServerHello {
                peerProtected = true
                afterChangeCipherSpec = !isTLS13
            }
        default:
            break
        }
        if remaining == 0 { endRecord() }
    }

    private mutating func body(_ chunk: UnsafeRawBufferPointer) {
        switch TLSWire.ContentType(rawValue: recordType) {
        case .alert?:
            if alertBody.count < 2 { alertBody.append(contentsOf: chunk.prefix(2 - alertBody.count)) }
        case .handshake? where !peerProtected:
            handshakeBytes(chunk)
        default:
            break
        }
    }

    private mutating func endRecord() {
        let isPlainAlert = recordType == TLSWire.ContentType.alert.rawValue && !peerProtected && alertBody.count == 2
        lastPlaintextAlert = isPlainAlert ? (alertBody[0], alertBody[1]) : nil
        guard isPlainAlert, alertBody[0] == 1, alertBody[1] != TLSAlert.closeNotify.rawValue else { return }
        // An unprotected warning alert during the handshake.
        if role == .client && alertBody[1] == TLSAlert.noRenegotiation.rawValue {
            // There is no renegotiation to refuse before a first handshake (RFC 5246
            // §7.2.2): libssl fails with handshake_failure; GnuTLS resent its ClientHello.
            return fail(TLSWireViolation(.handshakeFailure, "a no_renegotiation alert during the first handshake"))
        }
        warningsInARow += 1
        if warningsInARow > Self.maxWarningsInARow {
            return fail(TLSWireViolation(.unexpectedMessage,
                "\(warningsInARow) warning alerts in a row during the handshake (at most \(Self.maxWarningsInARow))"))
        }
    }

    /// Unprotected handshake bytes: message headers checked, a client's ServerHello kept.
    private mutating func handshakeBytes(_ chunk: UnsafeRawBufferPointer) {
        var index = 0
        while index < chunk.count, violation == nil, !peerProtected {
            if messageRemaining == 0 && messageHeaderCount < 4 {
                messageHeader = messageHeader << 8 | UInt32(chunk[index])
                messageHeaderCount += 1
                index += 1
                if messageHeaderCount == 4 { startMessage() }
                continue
            }
            let take = min(messageRemaining, chunk.count - index)
            if messageType == TLSWire.serverHelloType && role == .client {
                messageBody.append(contentsOf: chunk[index..<(index + take)])
            }
            index += take
            messageRemaining -= take
            if messageRemaining == 0 { endMessage() }
        }
    }

    private mutating func startMessage() {
        messageType = UInt8(truncatingIfNeeded: messageHeader >> 24)
        messageRemaining = Int(messageHeader & 0xFF_FFFF)
        messageHeader = 0
        messageHeaderCount = 0
        messageBody.removeAll(keepingCapacity: true)
        if let problem = TLSWire.validateHandshakeHeader(type: messageType, length: messageRemaining) { return fail(problem) }
        if messageRemaining == 0 { endMessage() }
    }

    private mutating func endMessage() {
        guard messageType == TLSWire.serverHelloType, role == .client else { return }
        // A ServerHello the library will refuse (malformed) needs no verdict from us.
        guard let hello = messageBody.withUnsafeBytes({ TLSWire.serverHello($0) }) else { return }
        if !hello.isHelloRetryRequest {
            sawServerHello = true
            if hello.version == 0x0304 {
                isTLS13 = true
                peerProtected = true
            }
        }
        messageBody = []
    }

    private mutating func fail(_ problem: TLSWireViolation) {
        violation = problem
        lastPlaintextAlert = nil
    }
}
