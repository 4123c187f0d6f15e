#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `SSL_CTX`s built from a ``TLSConfiguration``: the primary one, and one per
/// ``TLSServerNameCredentials`` entry (same settings, other identities) that the SNI
/// callback switches to. Immutable after `init`, so shared by connections on any thread.
/// `@unchecked Sendable`: the `SSL_CTX` pointers are set in `init` and never changed;
/// libssl documents a configured `SSL_CTX` as safe to share between threads.
/// An `SSL_CTX` holding identities a server identity selector chose. `@unchecked
/// Sendable`: configured once, then only shared (libssl reference-counts it).
final class OpenSSLPreparedCredentials: TLSPreparedCredentials, @unchecked Sendable {
    let ctx: OpaquePointer
    init(ctx: OpaquePointer) { self.ctx = ctx }
    deinit { SSL_CTX_free(ctx) }
}

final class OpenSSLContextEngine: TLSContextEngine, @unchecked Sendable {
    let ctx: OpaquePointer
    let configuration: TLSConfiguration
    /// The server's ALPN list in wire format, at a stable address for the selection
    /// callback (which hands OpenSSL a pointer into it).
    let alpnWire: UnsafeMutableBufferPointer<UInt8>
    /// SNI entries and their contexts, in configuration order.
    let serverNameContexts: [(entry: TLSServerNameCredentials, ctx: OpaquePointer)]

    init(configuration: TLSConfiguration) throws {
        self.configuration = configuration
        let wire = configuration.alpnWireFormat
        alpnWire = .allocate(capacity: wire.count)
        _ = alpnWire.initialize(from: wire)
        var built: [OpaquePointer] = []
        do {
            let primary = try Self.makeCTX(configuration, credentials: configuration.primaryCredentials)
            built.append(primary)
            var named: [(TLSServerNameCredentials, OpaquePointer)] = []
            for entry in configuration.serverNameCredentials {
                let entryCTX = try Self.makeCTX(configuration, credentials: entry.credentials)
                built.append(entryCTX)
                named.append((entry, entryCTX))
            }
            ctx = primary
            serverNameContexts = named
        } catch {
            built.forEach { SSL_CTX_free($0) }
            alpnWire.deallocate()
            throw error
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let selectsALPN = alpnWire.count > 0 || configuration.applicationProtocolSelector != nil
        for context in [ctx] + serverNameContexts.map(\.ctx) where selectsALPN {
            SSL_CTX_set_alpn_select_cb(context, openSSLALPNSelect, me)
        }
        if !serverNameContexts.isEmpty {
            tlskit_SSL_CTX_set_tlsext_servername_callback(ctx, openSSLServerName)
            tlskit_SSL_CTX_set_tlsext_servername_arg(ctx, me)
        }
    }

    deinit {
        SSL_CTX_free(ctx)
        serverNameContexts.forEach { SSL_CTX_free($0.ctx) }
        alpnWire.deallocate()
    }

    func makeConnectionEngine(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSConnectionEngine {
        try OpenSSLConnectionEngine(context: self, role: role, transport: transport, serverName: serverName)
    }

    /// Identities a server identity selector chose: an `SSL_CTX` with the same settings
    /// and these identities (as for an SNI entry), switched to with `SSL_set_SSL_CTX`
    /// before the handshake starts.
    func prepareServerCredentials(_ credentials: [TLSCredential]) throws -> any TLSPreparedCredentials {
        let prepared = OpenSSLPreparedCredentials(ctx: try Self.makeCTX(configuration, credentials: credentials))
        if alpnWire.count > 0 || configuration.applicationProtocolSelector != nil {
            SSL_CTX_set_alpn_select_cb(prepared.ctx, openSSLALPNSelect, Unmanaged.passUnretained(self).toOpaque())
        }
        return prepared
    }

    /// The context for an SNI name, if an entry matches.
    func context(forServerName name: String) -> OpaquePointer? {
        serverNameContexts.first { $0.entry.matches(name) }?.ctx
    }

    // MARK: - Building an SSL_CTX

    static func makeCTX(_ configuration: TLSConfiguration, credentials: [TLSCredential]) throws -> OpaquePointer {
        let backend = OpenSSLBackend.id
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_method()) else {
            throw TLSError(.internalError, "SSL_CTX_new: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        do {
            func version(_ v: TLSVersion) -> Int32 { v == .tls12 ? TLS1_2_VERSION : TLS1_3_VERSION }
            tlskit_SSL_CTX_set_min_proto_version(ctx, version(configuration.minimumTLSVersion))
            tlskit_SSL_CTX_set_max_proto_version(ctx, version(configuration.maximumTLSVersion))
            // 112-bit security whatever /etc/ssl/openssl.cnf says: RSA ≥ 2048, no SHA-1
            // signatures (the GnuTLS backend uses the MEDIUM verification profile).
            SSL_CTX_set_security_level(ctx, 2)
            // The whole-chain verification step: X509_verify_cert, then the custom
            // verification of a connection that has one (see openSSLCertificateVerify).
            SSL_CTX_set_cert_verify_callback(ctx, openSSLCertificateVerify, nil)
            // No compression, no renegotiation at all, no legacy insecure renegotiation.
            SSL_CTX_set_options(ctx, tlskit_SSL_OP_NO_COMPRESSION() | tlskit_SSL_OP_NO_RENEGOTIATION())
            // write() semantics: the core loops over partial writes and may pass the
            // remaining bytes from another address on retry. NO_AUTO_CHAIN: send exactly
            // the configured chain (as GnuTLS does) instead of rebuilding it from the trust
            // store on every handshake (measured: 6 file-system look-ups per handshake).
            tlskit_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                              | SSL_MODE_NO_AUTO_CHAIN))
            if configuration.pinningMode == .inAdditionToChainVerification
                && configuration.certificateVerification != .insecureNoVerification {
                try loadTrust(ctx, configuration.trustRoots)
                try loadRevocationLists(ctx, configuration.certificateRevocationLists)
                if configuration.trustsPartialChains {
                    // Any certificate of the trust store may end the chain, not only a
                    // self-signed root.
                    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), UInt(X509_V_FLAG_PARTIAL_CHAIN))
                }
            }
            for credential in credentials {
                try OpenSSLCredentialLoader.load(credential, into: ctx)
            }
            try OpenSSLFeatures.configure(ctx, configuration)
            return ctx
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
    }

    private static func loadTrust(_ ctx: OpaquePointer, _ roots: TLSTrustRoots) throws {
        let backend = OpenSSLBackend.id
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
                    throw TLSError(.badCertificate, "no certificate (PEM or DER) found in the trust roots given in memory", backend: backend)
                }
                for cert in certificates where X509_STORE_add_cert(store, cert) != 1 {
                    throw TLSError(.badCertificate, "cannot add a trust root: \(OpenSSLErrorQueue.drainText())", backend: backend)
                }
            }
        }
    }

    /// CRLs are checked for every certificate of the chain whose issuer has one; a
    /// missing CRL is not an error (the verify callback ignores UNABLE_TO_GET_CRL), as
    /// with GnuTLS.
    private static func loadRevocationLists(_ ctx: OpaquePointer, _ sources: [TLSDataSource]) throws {
        guard !sources.isEmpty else { return }
        let backend = OpenSSLBackend.id
        let store = SSL_CTX_get_cert_store(ctx)
        for source in sources {
            let bytes = try source.load(backend: backend, code: .badCertificate, what: "CRL")
            let lists = OpenSSLPEM.readCRLs(bytes)
            defer { lists.forEach { X509_CRL_free($0) } }
            guard !lists.isEmpty else {
                throw TLSError(.badCertificate, "no CRL (PEM or DER) found in the revocation list given", backend: backend)
            }
            for list in lists where X509_STORE_add_crl(store, list) != 1 {
                throw TLSError(.badCertificate, "cannot add a CRL: \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
        }
        X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
    }
}

/// Loads a ``TLSCredential`` into an `SSL_CTX`.
enum OpenSSLCredentialLoader {
    static func load(_ credential: TLSCredential, into ctx: OpaquePointer) throws {
        let backend = OpenSSLBackend.id
        let certificates: [OpaquePointer]
        let key: OpaquePointer
        switch credential {
        case .certificateChain(let chainSource, let keySource, let passphrase):
            let chainBytes = try chainSource.load(backend: backend, code: .badCertificate, what: "certificate chain")
            certificates = OpenSSLPEM.readCertificates(chainBytes)
            guard !certificates.isEmpty else {
                throw TLSError(.badCertificate, "no certificate (PEM or DER) found in the certificate chain\(describe(chainSource))", backend: backend)
            }
            do {
                let keyBytes = try keySource.load(backend: backend, code: .badPrivateKey, what: "private key")
                key = try readPrivateKey(keyBytes, passphrase: passphrase, source: keySource)
            } catch {
                certificates.forEach { X509_free($0) }
                throw error
            }
        case .pkcs12(let source, let password):
            (certificates, key) = try readPKCS12(try source.load(backend: backend, code: .badCertificate, what: "PKCS#12 bundle"),
                                                 password: password, source: source)
        }
        defer {
            certificates.forEach { X509_free($0) }
            EVP_PKEY_free(key)
        }
        ERR_clear_error()
        guard SSL_CTX_use_certificate(ctx, certificates[0]) == 1 else {
            throw TLSError(.badCertificate, "cannot use the certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        for intermediate in certificates.dropFirst() where tlskit_SSL_CTX_add1_chain_cert(ctx, intermediate) != 1 {
            throw TLSError(.badCertificate, "cannot add an intermediate certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        guard SSL_CTX_use_PrivateKey(ctx, key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError(.keyCertificateMismatch, "the private key does not match the certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
    }

    private static func describe(_ source: TLSDataSource) -> String {
        if case .file(let path) = source { return " \(path)" }
        return ""
    }

    /// PEM (PKCS#8, traditional, encrypted with `passphrase`) or DER (PKCS#8, plain or encrypted).
    static func readPrivateKey(_ bytes: [UInt8], passphrase: String?, source: TLSDataSource) throws -> OpaquePointer {
        let backend = OpenSSLBackend.id
        let isPEM = TLSDataSource.isPEM(bytes)
        let encrypted = isPEM && (String(decoding: bytes, as: UTF8.self).contains("ENCRYPTED"))
        ERR_clear_error()
        let key: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return withOptionalCString(passphrase) { secret in
                let userdata = UnsafeMutableRawPointer(mutating: secret)
                if isPEM { return PEM_read_bio_PrivateKey(bio, nil, tlskit_pem_passphrase, userdata) }
                if let plain = d2i_PrivateKey_bio(bio, nil) { return plain }
                _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
                return d2i_PKCS8PrivateKey_bio(bio, nil, tlskit_pem_passphrase, userdata)
            }
        }
        if let key { return key }
        let detail = OpenSSLErrorQueue.drainText()
        if encrypted || (!isPEM && passphrase != nil) {
            let why = passphrase == nil ? "is encrypted and no passphrase was given" : "could not be decrypted: wrong passphrase"
            throw TLSError(.badPassphrase, "the private key\(describe(source)) \(why) (\(detail))", backend: backend)
        }
        throw TLSError(.badPrivateKey, "cannot read the private key\(describe(source)) (PEM or DER): \(detail)", backend: backend)
    }

    /// A PKCS#12 bundle (DER, or PEM-armoured): leaf, chain and key.
    static func readPKCS12(_ bytes: [UInt8], password: String, source: TLSDataSource) throws -> ([OpaquePointer], OpaquePointer) {
        let backend = OpenSSLBackend.id
        let der = TLSDataSource.isPEM(bytes) ? OpenSSLPEM.decodeArmour(bytes) : bytes
        ERR_clear_error()
        let bundle: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PKCS12(nil, &cursor, buffer.count)
        }
        guard let bundle else {
            throw TLSError(.badCertificate, "not a PKCS#12 bundle\(describe(source)): \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        defer { PKCS12_free(bundle) }
        guard PKCS12_verify_mac(bundle, password, -1) == 1 else {
            throw TLSError(.badPassphrase, "the PKCS#12 bundle\(describe(source)) could not be opened: wrong password (\(OpenSSLErrorQueue.drainText()))", backend: backend)
        }
        var key: OpaquePointer?
        var leaf: OpaquePointer?
        var chain: OpaquePointer?
        guard PKCS12_parse(bundle, password, &key, &leaf, &chain) == 1, let key, let leaf else {
            throw TLSError(.badCertificate, "the PKCS#12 bundle\(describe(source)) holds no key and certificate: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        var certificates = [leaf]
        if let chain {
            for index in 0..<tlskit_sk_X509_num(chain) {
                if let cert = tlskit_sk_X509_value(chain, index), X509_up_ref(cert) == 1 { certificates.append(cert) }
            }
            tlskit_sk_X509_pop_free(chain)
        }
        return (certificates, key)
    }
}

private func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
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
    if let selector = engine.configuration.applicationProtocolSelector {
        // The client's list, read by TLSWire; answer with a pointer into it.
        let list = UnsafeRawBufferPointer(start: offered, count: Int(offeredLength))
        guard let names = TLSWire.protocolNames(list), let chosen = selector.select(names),
              let match = offsets(of: names, in: list).first(where: { $0.0 == chosen })
        else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        out.pointee = offered + match.1 + 1
        outLength.pointee = UInt8(match.2)
        return SSL_TLSEXT_ERR_OK
    }
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

/// Each name with the offset of its length byte in the ProtocolNameList and its length.
private func offsets(of names: [String], in list: UnsafeRawBufferPointer) -> [(String, Int, Int)] {
    var offset = 0
    return names.map { name in
        defer { offset += 1 + Int(list[offset]) }
        return (name, offset, Int(list[offset]))
    }
}

/// SNI on the server: switch to the context of the matching entry, if any.
private func openSSLServerName(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let argument, let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
        return SSL_TLSEXT_ERR_OK
    }
    let engine = Unmanaged<OpenSSLContextEngine>.fromOpaque(argument).takeUnretainedValue()
    // A connection whose identity the core's selector chose already left the primary
    // context (libssl then calls the primary context's callback): the choice stands.
    guard SSL_get_SSL_CTX(ssl) == engine.ctx else { return SSL_TLSEXT_ERR_OK }
    if let named = engine.context(forServerName: String(cString: name)) {
        SSL_set_SSL_CTX(ssl, named)
    }
    return SSL_TLSEXT_ERR_OK
}
#endif

#if OpenSSL
extension OpenSSLContextEngine {
    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] {
        let md: OpaquePointer?
        switch algorithm {
        case .sha256: md = EVP_sha256()
        case .sha384: md = EVP_sha384()
        case .sha512: md = EVP_sha512()
        }
        var output = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        _ = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &output, &length, md, nil) }
        return Array(output.prefix(Int(length)))
    }
}
#endif

