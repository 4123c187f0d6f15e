#if OpenSSL
internal import COpenSSL
import TLSCore
#if canImport(Glibc)
import Glibc
#endif

/// An `SSL_CTX` built from a ``TLSConfiguration``. Immutable after `init`, so it is
/// shared by connections on any thread (OpenSSL's own rule for a configured `SSL_CTX`).
final class OpenSSLContextEngine: TLSContextEngine, @unchecked Sendable {
    let ctx: OpaquePointer
    let configuration: TLSConfiguration
    /// The server's ALPN list in wire format, at a stable address for the selection
    /// callback (which hands OpenSSL a pointer into it).
    let alpnWire: UnsafeMutableBufferPointer<UInt8>
    let hasIdentity: Bool

    init(configuration: TLSConfiguration) throws {
        let backend = OpenSSLBackend.name
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_method()) else {
            throw TLSError(.internalError, "SSL_CTX_new: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        self.ctx = ctx
        self.configuration = configuration
        let wire = configuration.alpnWireFormat
        self.alpnWire = .allocate(capacity: wire.count)
        _ = self.alpnWire.initialize(from: wire)
        self.hasIdentity = configuration.certificateChain != nil

        func version(_ v: TLSVersion) -> Int32 { v == .tls12 ? TLS1_2_VERSION : TLS1_3_VERSION }
        tlskit_SSL_CTX_set_min_proto_version(ctx, version(configuration.minimumTLSVersion))
        tlskit_SSL_CTX_set_max_proto_version(ctx, version(configuration.maximumTLSVersion))
        // No compression, no renegotiation at all (TLS 1.3 has none; TLS 1.2's secure
        // renegotiation is refused as well), no legacy insecure renegotiation.
        SSL_CTX_set_options(ctx, tlskit_SSL_OP_NO_COMPRESSION() | tlskit_SSL_OP_NO_RENEGOTIATION())
        // write() semantics: the core loops over partial writes and may pass the
        // remaining bytes from another address on retry.
        tlskit_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))

        try loadTrust(configuration.trustRoots)
        if let chain = configuration.certificateChain, let key = configuration.privateKey {
            try loadIdentity(chain: chain, key: key)
        }
        if !alpnWire.isEmpty {
            SSL_CTX_set_alpn_select_cb(ctx, openSSLALPNSelect, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit {
        SSL_CTX_free(ctx)
        alpnWire.deallocate()
    }

    private func loadTrust(_ roots: TLSTrustRoots) throws {
        let backend = OpenSSLBackend.name
        ERR_clear_error()
        switch roots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                throw TLSError(.badCertificate, "cannot load the system trust store: \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
        case .caFile(let path):
            guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                throw TLSError(.badCertificate, "cannot load CA file \(path): \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
        case .caDirectory(let path):
            var status = stat()
            guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
                throw TLSError(.badCertificate, "CA directory \(path) does not exist or is not a directory", backend: backend)
            }
            guard SSL_CTX_load_verify_locations(ctx, nil, path) == 1 else {
                throw TLSError(.badCertificate, "cannot use CA directory \(path): \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
        case .certificates(let sources):
            let store = SSL_CTX_get_cert_store(ctx)
            for source in sources {
                let bytes = try source.load(backend: backend, code: .badCertificate, what: "CA certificate")
                let certificates = OpenSSLPEM.readCertificates(bytes)
                defer { certificates.forEach { X509_free($0) } }
                guard !certificates.isEmpty else {
                    throw TLSError(.badCertificate, "no PEM certificate found in the trust roots given in memory", backend: backend)
                }
                for cert in certificates where X509_STORE_add_cert(store, cert) != 1 {
                    throw TLSError(.badCertificate, "cannot add a trust root: \(OpenSSLErrorQueue.drainText())", backend: backend)
                }
            }
        }
    }

    private func loadIdentity(chain: TLSDataSource, key: TLSDataSource) throws {
        let backend = OpenSSLBackend.name
        let chainBytes = try chain.load(backend: backend, code: .badCertificate, what: "certificate chain")
        let certificates = OpenSSLPEM.readCertificates(chainBytes)
        defer { certificates.forEach { X509_free($0) } }
        guard let leaf = certificates.first else {
            throw TLSError(.badCertificate, "no PEM certificate found in the certificate chain", backend: backend)
        }
        ERR_clear_error()
        guard SSL_CTX_use_certificate(ctx, leaf) == 1 else {
            throw TLSError(.badCertificate, "cannot use the certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        for intermediate in certificates.dropFirst() where tlskit_SSL_CTX_add1_chain_cert(ctx, intermediate) != 1 {
            throw TLSError(.badCertificate, "cannot add an intermediate certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        let keyBytes = try key.load(backend: backend, code: .badPrivateKey, what: "private key")
        let pkey = keyBytes.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let pkey else {
            throw TLSError(.badPrivateKey, "cannot read the private key (PEM): \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        defer { EVP_PKEY_free(pkey) }
        guard SSL_CTX_use_PrivateKey(ctx, pkey) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError(.keyCertificateMismatch, "the private key does not match the certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
    }

    func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        try OpenSSLCertificateParser.info(der: der)
    }

    func makeSession(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSSessionEngine {
        try OpenSSLSession(context: self, role: role, transport: transport, serverName: serverName)
    }
}

/// ALPN selection on the server: the server's preference order; no overlap is the fatal
/// `no_application_protocol` alert (RFC 7301 §3.2), as on the GnuTLS backend.
private func openSSLALPNSelect(
    _ ssl: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?,
    _ offeredLength: UInt32,
    _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let argument, let out, let outLength, let offered else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let engine = Unmanaged<OpenSSLContextEngine>.fromOpaque(argument).takeUnretainedValue()
    let server = engine.alpnWire
    var selected: UnsafeMutablePointer<UInt8>?
    var selectedLength: UInt8 = 0
    let result = SSL_select_next_proto(
        &selected, &selectedLength, server.baseAddress, UInt32(server.count), offered, offeredLength)
    guard result == OPENSSL_NPN_NEGOTIATED, let selected else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    // `selected` points into the server list, which lives as long as the context.
    out.pointee = UnsafePointer(selected)
    outLength.pointee = selectedLength
    return SSL_TLSEXT_ERR_OK
}
#endif
