#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// What the handshake negotiated, and the optional features (resumption, exporter,
/// key log).
extension GnuTLSConnectionEngine {
    // MARK: - Negotiated parameters

    var negotiatedVersion: TLSVersion? {
        switch gnutls_protocol_get_version(session) {
        case GNUTLS_TLS1_3: return .tls13
        case GNUTLS_TLS1_2: return .tls12
        default: return nil
        }
    }

    var cipherSuite: String? {
        gnutls_ciphersuite_get(session).map { String(cString: $0) }
    }

    var negotiatedApplicationProtocol: String? {
        var selected = gnutls_datum_t(data: nil, size: 0)
        guard gnutls_alpn_get_selected_protocol(session, &selected) >= 0 else { return nil }
        let bytes = GnuTLS.copy(selected)
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    var peerCertificateChain: [[UInt8]] {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count) else { return [] }
        return (0..<Int(count)).map { GnuTLS.copy(list[$0]) }
    }

    var requestedServerName: String? {
        guard role == .server else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        var size = buffer.count
        var type: UInt32 = 0
        let result = gnutls_server_name_get(session, &buffer, &size, &type, 0)
        guard result >= 0, type == GNUTLS_NAME_DNS.rawValue, size > 0 else { return nil }
        let length = buffer[0..<min(size, buffer.count)].firstIndex(of: 0) ?? min(size, buffer.count)
        return String(decoding: buffer[0..<length], as: UTF8.self)
    }

    // MARK: - Features

    var negotiatedGroup: TLSGroup? {
        if let group = GnuTLSFeatures.group(gnutls_group_get(session)) { return group }
        // TLS 1.2 ECDHE: the curve (GnuTLS numbers EC groups like their curves).
        let curve = gnutls_ecc_curve_get(session)
        return GnuTLSFeatures.group(gnutls_group_t(rawValue: curve.rawValue))
    }

    var isSessionReused: Bool { gnutls_session_is_resumed(session) != 0 }

    /// `gnutls_session_get_data2`, once there is something to resume with: in TLS 1.3 a
    /// NewSessionTicket must have been read (GnuTLS would otherwise wait for one on the
    /// transport, up to a round trip plus 60 ms, and return a "no ticket" placeholder);
    /// in TLS 1.2 a ticket from the server, or the resumed session's own.
    var exportedSession: [UInt8]? {
        guard role == .client else { return nil }
        let ticketReceived = gnutls_session_get_flags(session) & GNUTLS_SFLAGS_SESSION_TICKET.rawValue != 0
        guard ticketReceived || (negotiatedVersion == .tls12 && isSessionReused) else { return nil }
        var datum = gnutls_datum_t(data: nil, size: 0)
        guard gnutls_session_get_data2(session, &datum) >= 0 else { return nil }
        let bytes = GnuTLS.consume(&datum)
        return bytes.isEmpty ? nil : bytes
    }

    /// `gnutls_session_set_data` unpacks the bytes itself; there is no decoded form to keep.
    func resume(from session: TLSSession) -> Bool {
        let bytes = session.bytes
        guard role == .client, !bytes.isEmpty else { return false }
        return bytes.withUnsafeBytes { gnutls_session_set_data(self.session, $0.baseAddress, $0.count) } >= 0
    }

    /// `gnutls_prf_rfc5705`: a nil context is "no context" (TLS 1.2 tells it apart from an
    /// empty one by a NULL pointer, so an empty context gets a valid one).
    func exportKeyingMaterial(label: String, context exporterContext: [UInt8]?, length: Int) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: length)
        let labelBytes = Array(label.utf8)
        let result: Int32 = labelBytes.withUnsafeBufferPointer { labelBuffer in
            output.withUnsafeMutableBufferPointer { out in
                let labelPointer = UnsafeRawPointer(labelBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                let outPointer = UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: CChar.self)
                guard let exporterContext else {
                    return gnutls_prf_rfc5705(session, labelBuffer.count, labelPointer, 0, nil, length, outPointer)
                }
                let storage = exporterContext.isEmpty ? [0] : exporterContext
                return storage.withUnsafeBufferPointer { contextBuffer in
                    gnutls_prf_rfc5705(session, labelBuffer.count, labelPointer, exporterContext.count,
                                       UnsafeRawPointer(contextBuffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                                       length, outPointer)
                }
            }
        }
        return result >= 0 ? output : nil
    }

    var localCertificate: [UInt8]? {
        guard let ours = gnutls_certificate_get_ours(session) else { return nil }
        let bytes = GnuTLS.copy(ours.pointee)
        return bytes.isEmpty ? nil : bytes
    }

    /// One secret from GnuTLS's key-log hook, as an `SSLKEYLOGFILE` line.
    func logKey(label: String, secret: [UInt8]) {
        guard let logger = configuration.keyLogger else { return }
        var client = gnutls_datum_t(data: nil, size: 0), server = gnutls_datum_t(data: nil, size: 0)
        gnutls_session_get_random(session, &client, &server)
        logger.log(label: label, clientRandom: GnuTLS.copy(client), secret: secret)
    }
}
#endif
