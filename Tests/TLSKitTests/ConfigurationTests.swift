import Testing
import TLSKit

/// Configuration errors are reported at context creation with a clear code.
@Suite("Configuration", .timeLimit(.minutes(5)), .sharesProcess)
struct ConfigurationTests {
    @Test("secure defaults", arguments: allBackends)
    func defaults(backend: Backend) {
        let client = TLSConfiguration.makeClientConfiguration()
        #expect(client.certificateVerification == .fullVerification)
        #expect(client.trustRoots == .system)
        #expect(client.minimumTLSVersion == .tls12)
        let server = TLSConfiguration.makeServerConfiguration(certificateChain: .file("c"), privateKey: .file("k"))
        #expect(server.clientAuthentication == .none)
        #expect(server.minimumTLSVersion == .tls12)
    }

    @Test("invalid values: min above max, bad ALPN, key without certificate, bad server name", arguments: allBackends)
    func invalid(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let cases: [(inout TLSConfiguration) -> Void] = [
            { $0.minimumTLSVersion = .tls13; $0.maximumTLSVersion = .tls12 },
            { $0.applicationProtocols = [""] },
            { $0.applicationProtocols = [String(repeating: "x", count: 256)] },
            { $0.applicationProtocols = ["h2", "h2"] },
            { $0.privateKey = .pem(fixture.identity.privateKeyPEM) },
            { $0.serverName = "bad name with spaces" },
        ]
        for change in cases {
            let error = try #require(throws: TLSError.self) { try fixture.clientContext(change) }
            #expect(error.code == .invalidConfiguration)
        }
    }

    /// The message of each case of ``loadingErrors(backend:)``, in order, per backend:
    /// TLSKit's words and, after them, the library's own text (OpenSSL's error queue,
    /// GnuTLS's `gnutls_strerror`) as the system's OpenSSL 3 / GnuTLS 3 word it.
    static let loadingMessages: [String: [String]] = [
        "OpenSSL": [
            "no certificate (PEM or DER) found in the certificate chain",
            "cannot open certificate chain file /nonexistent/cert.pem: No such file or directory",
            "cannot read the private key (PEM or DER): error:0680008E:asn1 encoding routines::not enough data; "
                + "error:0680008E:asn1 encoding routines::not enough data",
            "cannot open private key file /nonexistent/key.pem: No such file or directory",
            "the private key does not match the certificate: error:05800074:x509 certificate routines::key values mismatch",
            "cannot load CA file /nonexistent/ca.pem: error:80000002:system library::No such file or directory; "
                + "error:10000080:BIO routines::no such file; error:05880002:x509 certificate routines::system lib",
            "CA directory /nonexistent/dir does not exist or is not a directory",
            "no certificate (PEM or DER) found in the trust roots given in memory",
        ],
        "GnuTLS": [
            "parsing the PEM certificate chain (in memory): Base64 unexpected header error.",
            "cannot open certificate chain file /nonexistent/cert.pem: No such file or directory",
            "parsing the DER (neither PEM nor a DER PKCS#8 key) private key (in memory): ASN1 parser: Error in TAG.",
            "cannot open private key file /nonexistent/key.pem: No such file or directory",
            "the private key (in memory) does not belong to the first certificate of the certificate chain (in memory)",
            "loading trust roots from /nonexistent/ca.pem: Error while reading file.",
            "no CA certificate found in /nonexistent/dir",
            "loading trust roots from trust root #1 (in memory): Base64 unexpected header error.",
        ],
    ]

    @Test("bad PEM, missing file, mismatched key: distinct errors naming the backend", arguments: allBackends)
    func loadingErrors(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let other = try Fixture(backend)
        let garbage = TLSDataSource.pem("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        let cases: [(TLSConfiguration, TLSError.Code)] = [
            (.makeServerConfiguration(certificateChain: garbage, privateKey: .pem(fixture.identity.privateKeyPEM)), .badCertificate),
            (.makeServerConfiguration(certificateChain: .file("/nonexistent/cert.pem"), privateKey: .pem(fixture.identity.privateKeyPEM)), .badCertificate),
            (.makeServerConfiguration(certificateChain: .pem(fixture.identity.certificateChainPEM), privateKey: .pem("garbage")), .badPrivateKey),
            (.makeServerConfiguration(certificateChain: .pem(fixture.identity.certificateChainPEM), privateKey: .file("/nonexistent/key.pem")), .badPrivateKey),
            (.makeServerConfiguration(certificateChain: .pem(fixture.identity.certificateChainPEM), privateKey: .pem(other.identity.privateKeyPEM)), .keyCertificateMismatch),
            (TLSConfiguration(trustRoots: .caFile("/nonexistent/ca.pem")), .badCertificate),
            (TLSConfiguration(trustRoots: .caDirectory("/nonexistent/dir")), .badCertificate),
            (TLSConfiguration(trustRoots: .certificates([garbage])), .badCertificate),
        ]
        let messages = try #require(Self.loadingMessages[backend.name], "no messages written down for \(backend.name)")
        try #require(messages.count == cases.count)
        for ((configuration, code), message) in zip(cases, messages) {
            let error = try #require(throws: TLSError.self) { try backend.type.makeContext(configuration) }
            #expect(error.code == code, "\(error)")
            #expect(error.backend == backend.id, "\(error)")
            #expect(error.message == message)
        }
        let missing = try #require(throws: TLSError.self) {
            try backend.type.makeContext(.makeServerConfiguration(certificateChain: .file("/nonexistent/cert.pem"),
                                                                   privateKey: .pem(fixture.identity.privateKeyPEM)))
        }
        // One file reader for every backend (TLSDataSource.load): the same words on both.
        #expect(missing.message == "cannot open certificate chain file /nonexistent/cert.pem: No such file or directory")
    }

    @Test("a server context without a certificate: accept gives -1 .ssl invalidConfiguration", arguments: allBackends)
    func serverWithoutIdentity(backend: Backend) throws {
        let context = try backend.type.makeContext(.makeClientConfiguration())
        let connection = context.makeConnection()
        try connection.setTransport(.memory(TLSMemoryPair()))
        #expect(connection.step { $0.accept() } == Step(-1, .ssl))
        #expect(connection.lastError?.code == .invalidConfiguration)
    }

    @Test("the generated identity: a PEM certificate and PKCS#8 key for the names given", arguments: allBackends)
    func generatedIdentity(backend: Backend) throws {
        let identity = try backend.type.makeSelfSignedIdentity(
            commonName: "demo", subjectAlternativeNames: ["demo.example", "10.1.2.3"], validityDays: 1)
        #expect(identity.certificateChainPEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(identity.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let factory = try CertificateFactory()
        defer { factory.remove() }
        let path = try write(identity.certificateChainPEM, to: "id.pem", in: factory.directory)
        let text = try factory.openssl(["x509", "-in", path, "-noout", "-text"])
        #expect(text.contains("DNS:demo.example"))
        #expect(text.contains("IP Address:10.1.2.3"))
        #expect(text.contains("CA:FALSE"))
        #expect(text.contains("Subject: CN = demo"))
    }
}
