#if NIO
internal import NIOCore
internal import NIOTLS
public import TLSCore

// What code outside the handler reads: the negotiated parameters, alone or as one
// Sendable value.
extension TLSKitHandler {
    // MARK: - What other code reads

    /// The negotiated protocol version; nil before the handshake completes.
    public var negotiatedVersion: TLSVersion? { connection.negotiatedVersion }
    /// The negotiated protocol version, under `NIOSSLHandler`'s name; nil before the
    /// handshake completes.
    public var tlsVersion: TLSVersion? { connection.negotiatedVersion }
    /// The negotiated cipher suite by its IANA name; nil before the handshake completes.
    public var cipherSuite: String? { connection.cipherSuite }
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String? { connection.negotiatedApplicationProtocol }
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]] { connection.peerCertificateChain }
    /// The peer's leaf certificate, parsed; nil before the handshake or without one.
    public var peerCertificate: TLSCertificateInfo? { connection.peerCertificateInfo }
    /// The chain a custom verification callback validated, as it answered it
    /// (`TLSVerificationVerdict.accept(validatedChain:)`): NIOSSL's
    /// `peerValidatedCertificateChain`; nil without such a callback or such an answer.
    public var peerValidatedCertificateChain: [[UInt8]]? { connection.validatedCertificateChain }
    /// How the peer was verified; nil before the handshake completes.
    public var peerVerification: TLSPeerVerification? { connection.peerVerification }
    /// Server role: the host name the client asked for with SNI.
    public var requestedServerName: String? { connection.requestedServerName }

    /// Decrypted plaintext not yet handed to the pipeline (0 between reads).
    var bufferedPlaintextBytes: Int { plaintext?.readableBytes ?? 0 }
    /// Ciphertext read from the channel and not yet taken by the library.
    var bufferedCiphertextBytes: Int { wire?.pendingInbound ?? 0 }

    /// Everything above in one value, safe to send to another thread.
    public var connectionInfo: TLSKitConnectionInfo? {
        guard connection.isHandshakeComplete else { return nil }
        return TLSKitConnectionInfo(
            negotiatedVersion: connection.negotiatedVersion,
            cipherSuite: connection.cipherSuite,
            negotiatedApplicationProtocol: connection.negotiatedApplicationProtocol,
            peerCertificateChain: connection.peerCertificateChain,
            peerCertificate: connection.peerCertificateInfo,
            peerVerification: connection.peerVerification,
            requestedServerName: connection.requestedServerName)
    }

    var backendID: TLSBackendID { connection.context.backendID }
}

/// What a completed handshake established, read from a handler: safe to send anywhere.
public struct TLSKitConnectionInfo: Sendable {
    /// The negotiated protocol version.
    public var negotiatedVersion: TLSVersion?
    /// The negotiated cipher suite by its IANA name.
    public var cipherSuite: String?
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String?
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]]
    /// The peer's leaf certificate, parsed.
    public var peerCertificate: TLSCertificateInfo?
    /// How the peer was verified.
    public var peerVerification: TLSPeerVerification?
    /// Server role: the host name the client asked for with SNI.
    public var requestedServerName: String?
}
#endif
