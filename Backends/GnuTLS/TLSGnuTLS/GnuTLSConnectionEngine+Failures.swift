#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// GnuTLS error codes classified into TLSErrors, and the alerts we send.
extension GnuTLSConnectionEngine {
    // MARK: - Failures

    /// The alert in the last record read, when it was an unprotected alert and GnuTLS
    /// failed on it with a record-layer error.
    ///
    /// In TLS 1.3 OpenSSL sends an alert that interrupts its handshake (a client that
    /// rejects the server's certificate) before it has handshake keys, so unprotected;
    /// OpenSSL's own server accepts such an alert in that window. GnuTLS tries to decrypt
    /// it and fails with GNUTLS_E_DECRYPTION_FAILED (and would send bad_record_mac).
    /// The peer has already given up: report its alert, send nothing back.
    ///
    /// A TLS 1.2 server that requires a client certificate turns any alert received in
    /// its place into GNUTLS_E_NO_CERTIFICATE_FOUND (`_gnutls_recv_client_certificate`):
    /// a client that rejected our certificate (BoringSSL's unknown_ca) would be reported
    /// as "the peer sent no certificate", and answered with handshake_failure.
    func peerPlaintextAlert(after error: Int32) -> TLSAlert? {
        switch error {
        case GNUTLS_E_DECRYPTION_FAILED, GNUTLS_E_UNEXPECTED_PACKET, GNUTLS_E_UNEXPECTED_PACKET_LENGTH,
             GNUTLS_E_RECORD_OVERFLOW, GNUTLS_E_ERROR_IN_FINISHED_PACKET, GNUTLS_E_NO_CERTIFICATE_FOUND:
            break
        default:
            return nil
        }
        guard let (level, description) = transport.lastPlaintextAlert else { return nil }
        if description == 0 || level == UInt8(GNUTLS_AL_FATAL.rawValue) { return TLSAlert(description) }
        return nil
    }

    /// The peer's fatal alert.
    func alertReceived(during what: String) -> TLSError {
        let alert = gnutls_alert_get(session)
        let name = gnutls_alert_get_name(alert).map { String(cString: $0) } ?? "alert \(alert.rawValue)"
        return TLSError(.alertReceived, "the peer sent a fatal alert during \(what): \(name)",
                        backend: GnuTLSBackend.id, alert: TLSAlert(UInt8(truncatingIfNeeded: alert.rawValue)))
    }

    /// Sends a fatal alert (GnuTLS sends none of its own) unless one was sent already or
    /// the transport is broken, as the version has it (``TLSAlert/inVersion(_:)``: no
    /// certificate_required in TLS 1.2). - Returns: the alert the peer gets, or nil.
    @discardableResult
    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert? {
        if let sentAlert { return sentAlert }
        if transport.failureErrno != nil || transport.reachedEndOfStream { return nil }
        let alert = alert.inVersion(gnutls_protocol_get_version(session) == GNUTLS_TLS1_3 ? .tls13 : .tls12)
        let description = gnutls_alert_description_t(rawValue: UInt32(alert.rawValue))
        guard gnutls_alert_send(session, GNUTLS_AL_FATAL, description) == GNUTLS_E_SUCCESS else { return nil }
        sentAlert = alert
        return alert
    }

    /// A fatal local error: protocol failure, with the alert GnuTLS would pick sent to the peer.
    func fatal(_ code: Int32, during what: String) -> TLSError {
        switch code {
        case GNUTLS_E_PUSH_ERROR, GNUTLS_E_PULL_ERROR:
            return GnuTLS.error(.transportFailure, "the transport failed during \(what)", code)
        case GNUTLS_E_PREMATURE_TERMINATION:
            return GnuTLS.error(.unexpectedEOF, "the peer closed the transport without close_notify during \(what)", code)
        default:
            break
        }
        var level: Int32 = 0
        let alertCode = gnutls_error_to_alert(code, &level)
        var alert: TLSAlert?
        if transport.wire.violation != nil {
            // TLSCore's wire reader saw what GnuTLS failed on: the core sends the wire
            // reader's alert and words the error (TLSConnection.wireFailure), as on every
            // backend. GnuTLS's own pick would differ: send nothing here.
        } else if alertCode >= 0 {
            alert = sendFatalAlert(TLSAlert(UInt8(truncatingIfNeeded: alertCode)))
        }
        var message = "\(what) failed: \(GnuTLS.describe(code))"
        if let alert { message += " (alert \(alert) sent)" }
        return TLSError(.protocolFailure, message, backend: GnuTLSBackend.id, alert: alert)
    }
}
#endif
