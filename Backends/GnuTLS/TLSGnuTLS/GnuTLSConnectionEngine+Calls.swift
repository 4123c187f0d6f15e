#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// Push/pull onto TLSTransportIO, and the contract calls (handshake, read, write,
/// close_notify, KeyUpdate) over the one retry skeleton ``run(_:_:classify:)``.
extension GnuTLSConnectionEngine {
    // MARK: - Transport callbacks

    func push(_ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard let bytes else { return fail(EINVAL) }
        if holdingOutput {
            heldOutput.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: count))
            return count
        }
        return pushed(transport.write(UnsafeRawBufferPointer(start: bytes, count: count)))
    }

    func push(vectors: UnsafePointer<giovec_t>?, _ count: Int32) -> Int {
        guard count > 0 else { return 0 }
        guard let vectors else { return fail(EINVAL) }
        if holdingOutput {
            var total = 0
            for vector in UnsafeBufferPointer(start: vectors, count: Int(count)) where vector.iov_len > 0 {
                heldOutput.append(contentsOf: UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len))
                total += vector.iov_len
            }
            return total
        }
        return pushed(transport.write(vectors: UnsafeBufferPointer(start: vectors, count: Int(count))))
    }

    /// A transport write's result as a push function returns it.
    func pushed(_ result: TLSIOResult) -> Int {
        switch result {
        case .transferred(let written): return written
        case .wouldBlock:
            blockedDirection = .wantWrite
            return fail(EAGAIN)
        case .endOfStream: return fail(EPIPE)
        case .failed(let error): return fail(error)
        }
    }

    func pull(_ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard let buffer else { return fail(EINVAL) }
        // Held writes go out before a read that would wait for the peer (who may be
        // waiting for them); not before one the socket can serve at once.
        if !heldOutput.isEmpty && readableBytes <= 0 { readableBytes = transport.readableBytes }
        if !heldOutput.isEmpty && readableBytes <= 0 {
            switch flushHeldOutput() {
            case nil: break
            case .wantWrite?:
                blockedDirection = .wantWrite
                return fail(EAGAIN)
            default:
                return fail(EPIPE)
            }
        }
        switch transport.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: count)) {
        case .transferred(let read):
            if readableBytes != .max { readableBytes = max(0, readableBytes - read) }
            bytesPulled &+= read
            return read
        case .wouldBlock:
            blockedDirection = .wantRead
            return fail(EAGAIN)
        case .endOfStream: return 0
        case .failed(let error): return fail(error)
        }
    }

    func fail(_ error: Int32) -> Int {
        gnutls_transport_set_errno(session, error)
        return -1
    }

    // MARK: - Calls

    /// The direction GnuTLS was blocked in after `GNUTLS_E_AGAIN` / `GNUTLS_E_INTERRUPTED`.
    func blocked() -> TLSEngineStatus {
        switch blockedDirection {
        case .wantWrite?: return .wantWrite
        case .wantRead?: return .wantRead
        default: return gnutls_record_get_direction(session) == 1 ? .wantWrite : .wantRead
        }
    }

    /// True when GnuTLS said "again" although the transport never blocked. GnuTLS does
    /// that after processing a TLS 1.3 post-handshake message (NewSessionTicket,
    /// KeyUpdate) in `gnutls_record_recv`, even on a blocking socket, and after a short
    /// read that ended with end-of-stream inside a record (the EOF is reported by the
    /// next call). OpenSSL carries on by itself in both cases (`SSL_MODE_AUTO_RETRY`),
    /// so the call is repeated at once.
    var spuriousAgain: Bool { blockedDirection == nil }

    /// How many times in a row a GnuTLS call may be repeated at once without having read
    /// a byte from the transport (a spurious "again", a non-fatal result) before the call
    /// fails. A retry that read bytes is progress and resets the count: GnuTLS says
    /// "again" after every record that carries only part of a handshake message, so a
    /// ClientHello sent in 1-byte records (legal: RFC 8446 §5.1, RFC 5246 §6.2.1) takes
    /// one retry per byte.
    static var maxRetriesWithoutProgress: Int { 64 }

    /// The one retry skeleton every GnuTLS call goes through: E_AGAIN / E_INTERRUPTED
    /// become want-read/want-write in the direction the transport blocked, a spurious
    /// "again" (the transport never blocked) is retried at once, and so is a result that
    /// `classify` calls non-fatal (nil: a warning alert, a refused renegotiation…). The
    /// guard counts progress, not calls: at most ``maxRetriesWithoutProgress`` retries in
    /// a row that read nothing from the transport. A peer that keeps sending valid bytes
    /// is never refused here; one whose records say nothing is bounded by GnuTLS itself
    /// (`GNUTLS_E_TOO_MANY_EMPTY_PACKETS`, unexpected_message) and by the core's
    /// warning-alert rule.
    func run(_ what: String, _ call: () -> Int, classify: (Int) -> TLSEngineStatus?) -> TLSEngineStatus {
        var last: Int32 = GNUTLS_E_AGAIN
        var retriesWithoutProgress = 0
        while retriesWithoutProgress <= Self.maxRetriesWithoutProgress {
            blockedDirection = nil
            let pulledBefore = bytesPulled
            let result = call()
            last = Int32(clamping: result)
            if result < 0, last == GNUTLS_E_AGAIN || last == GNUTLS_E_INTERRUPTED {
                // The verify function suspended the handshake for a custom verification:
                // GnuTLS keeps its state and runs the function again on the next call.
                if suspendedForVerification {
                    suspendedForVerification = false
                    return .wantRetryVerify
                }
                if !spuriousAgain { return blocked() }
            } else if let status = classify(result) {
                return status
            }
            retriesWithoutProgress = bytesPulled == pulledBefore ? retriesWithoutProgress + 1 : 0
        }
        return .failure(fatal(last, during: "\(what) (\(Self.maxRetriesWithoutProgress) retries without reading a byte)"))
    }

    /// Number of NewSessionTickets a TLS 1.3 server sends (GnuTLS's own
    /// `TLS13_TICKETS_TO_SEND`, OpenSSL's default too).
    static var ticketsPerHandshake: UInt32 { 2 }

    /// On a socket, one write per flight, as OpenSSL's buffered socket BIO does. GnuTLS
    /// on its own writes the client's ChangeCipherSpec as soon as the ServerHello is
    /// read, and its Finished later, and the server's flight in two parts; on a socket
    /// with Nagle's algorithm on, the second write of each pair waits for the peer's
    /// (delayed) ACK of the first: ~40 ms. Held bytes are sent before a read that would
    /// wait (see `pull`) and when the call returns; what a non-blocking socket does not
    /// take is sent first by the next call (want-write until then).
    func handshake() -> TLSEngineStatus {
        if let status = flushHeldOutput() { return status }
        if case .finished(let finished) = handshakePhase {
            handshakePhase = .running
            return finished
        }
        guard transport.writesVectors else { return handshakeStep() }
        holdingOutput = true
        let status = handshakeStep()
        holdingOutput = false
        if case .failure = status {
            _ = flushHeldOutput()  // the alert, if the socket takes it
            return status
        }
        if let blocked = flushHeldOutput() {
            switch status {
            case .wantRead, .wantWrite, .wantRetryVerify: break  // GnuTLS resumes where it stopped
            default: handshakePhase = .finished(status)  // done: report it once the bytes are out
            }
            return blocked
        }
        return status
    }

    /// Sends what ``handshake()`` held: nil once all is out, else the status to return.
    func flushHeldOutput() -> TLSEngineStatus? {
        while !heldOutput.isEmpty {
            switch heldOutput.withUnsafeBytes({ transport.write($0) }) {
            case .transferred(let written):
                heldOutput.removeFirst(written)
            case .wouldBlock:
                return .wantWrite
            case .endOfStream, .failed:
                heldOutput.removeAll()
                return .failure(fatal(GNUTLS_E_PUSH_ERROR, during: "the handshake"))
            }
        }
        return nil
    }

    /// TLS 1.3 server, handshake done: the tickets, in one flush (one transport write
    /// on a socket), in answer to the client's Finished. The handshake call reports
    /// success only once they are out, as `SSL_accept` does.
    func sendTickets() -> TLSEngineStatus {
        run("sending the session tickets", { Int(gnutls_session_ticket_send(session, Self.ticketsPerHandshake, 0)) }) { result in
            let code = Int32(clamping: result)
            handshakePhase = .running
            return code == GNUTLS_E_SUCCESS ? .success(1) : .failure(fatal(code, during: "sending the session tickets"))
        }
    }

    func handshakeStep() -> TLSEngineStatus {
        if case .sendingTickets = handshakePhase { return sendTickets() }
        return run("the handshake", { Int(gnutls_handshake(session)) }) { result in
            let code = Int32(clamping: result)
            if code == GNUTLS_E_SUCCESS {
                if role == .server && context.ticketMasterKey != nil
                    && gnutls_protocol_get_version(session) == GNUTLS_TLS1_3 {
                    handshakePhase = .sendingTickets
                    return sendTickets()
                }
                return .success(1)
            }
            if code < 0, gnutls_error_is_fatal(code) != 0, peerPlaintextAlert(after: code) != nil {
                // GnuTLS failed on the peer's unprotected close_notify or fatal alert: send
                // nothing back, and let the core's rule say what it means (TLSConnection:
                // 0 .zeroReturn for close_notify, alertReceived for a fatal alert).
                return .failure(GnuTLS.error(.protocolFailure, "the handshake failed on the peer's unprotected alert", code))
            }
            switch code {
            case GNUTLS_E_WARNING_ALERT_RECEIVED:
                return gnutls_alert_get(session) == GNUTLS_A_CLOSE_NOTIFY ? .closeNotify : nil
            case GNUTLS_E_SESSION_EOF:
                // The peer's close_notify arrived before the handshake completed.
                return .closeNotify
            case GNUTLS_E_FATAL_ALERT_RECEIVED:
                return .failure(alertReceived(during: "the handshake"))
            case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
                return .failure(verificationFailed(code))
            case GNUTLS_E_NO_CERTIFICATE_FOUND, GNUTLS_E_CERTIFICATE_REQUIRED:
                return .failure(noCertificate(code))
            default:
                // A non-fatal warning (a warning alert, a TLS 1.2 no_renegotiation…): go on.
                return gnutls_error_is_fatal(code) != 0 ? .failure(fatal(code, during: "the handshake")) : nil
            }
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .success(0) }
        if pendingNoRenegotiation, let status = flushNoRenegotiation() { return status }
        return run("a read", { gnutls_record_recv(session, base, buffer.count) }) { result in
            if result > 0 { return .success(result) }
            if result == 0 { return .closeNotify }
            let code = Int32(clamping: result)
            switch code {
            case GNUTLS_E_REHANDSHAKE:
                // The peer asks for a renegotiation (TLS 1.2): refuse politely, keep reading.
                pendingNoRenegotiation = true
                return flushNoRenegotiation()
            case GNUTLS_E_WARNING_ALERT_RECEIVED:
                return gnutls_alert_get(session) == GNUTLS_A_CLOSE_NOTIFY ? .closeNotify : nil
            case GNUTLS_E_SESSION_EOF:
                return .closeNotify
            case GNUTLS_E_FATAL_ALERT_RECEIVED:
                return .failure(alertReceived(during: "a read"))
            case GNUTLS_E_PREMATURE_TERMINATION:
                return .failure(GnuTLS.error(.unexpectedEOF, "the peer closed the transport without close_notify", code))
            default:
                return gnutls_error_is_fatal(code) != 0 ? .failure(fatal(code, during: "a read")) : nil
            }
        }
    }

    /// Sends (or finishes sending) the no_renegotiation warning. Returns a status to
    /// return when the transport blocks or fails, nil once it is sent.
    func flushNoRenegotiation() -> TLSEngineStatus? {
        blockedDirection = nil
        let sent = gnutls_alert_send(session, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION)
        switch sent {
        case GNUTLS_E_SUCCESS:
            pendingNoRenegotiation = false
            return nil
        case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
            return blocked()
        default:
            pendingNoRenegotiation = false
            return .failure(GnuTLS.error(.protocolFailure, "sending the no_renegotiation alert", sent))
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .success(0) }
        return run("a write", { gnutls_record_send(session, base, bytes.count) }) { result in
            if result > 0 { return .success(result) }
            let code = Int32(clamping: result)
            return result == 0 || gnutls_error_is_fatal(code) != 0 ? .failure(fatal(code, during: "a write")) : nil
        }
    }

    func sendCloseNotify() -> TLSEngineStatus {
        run("sending close_notify", { Int(gnutls_bye(session, GNUTLS_SHUT_WR)) }) { result in
            result == Int(GNUTLS_E_SUCCESS) ? .success(1) : .failure(fatal(Int32(clamping: result), during: "sending close_notify"))
        }
    }

    /// `gnutls_session_key_update`. After GNUTLS_E_AGAIN GnuTLS keeps its place (the
    /// message is built once, then only flushed), so a retry finishes the same update.
    /// GnuTLS answers the peer's update_requested by itself while reading.
    func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus {
        run("a KeyUpdate", { Int(gnutls_session_key_update(session, updatePeer ? UInt32(GNUTLS_KU_PEER) : 0)) }) { result in
            result == Int(GNUTLS_E_SUCCESS) ? .success(1) : .failure(fatal(Int32(clamping: result), during: "a KeyUpdate"))
        }
    }

}
#endif
