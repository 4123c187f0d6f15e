// What the core and the backends read from a configuration beyond its public options:
// the checks the core makes once in `TLSBackend.makeContext` (package access), and the
// derived forms a backend hands its library (the backend SPI).

extension TLSConfiguration {
    /// Checks the parts of the configuration that do not depend on the backend.
    /// ``TLSBackend/makeContext(_:)`` calls it before the backend sees the configuration.
    package func validate() throws {
        func invalid(_ message: String) -> TLSError {
            TLSError(.invalidConfiguration, message, backend: .tlsKit)
        }
        if minimumTLSVersion > maximumTLSVersion {
            throw invalid("minimumTLSVersion \(minimumTLSVersion) is above maximumTLSVersion \(maximumTLSVersion)")
        }
        if privateKeyPassphrase != nil && privateKey == nil {
            throw invalid("privateKeyPassphrase was given without a private key")
        }
        for entry in serverNameCredentials {
            if entry.credentials.isEmpty {
                throw invalid("serverNameCredentials for \(entry.serverNames) has no credentials")
            }
            if entry.serverNames.isEmpty {
                throw invalid("serverNameCredentials entry has no server names")
            }
            for name in entry.serverNames where TLSHostName.isIPAddress(name) || !TLSHostName.isValidServerName(name) {
                throw invalid("serverNameCredentials name \"\(name)\" is not a DNS name (SNI carries DNS names only)")
            }
        }
        for pin in pinnedPublicKeys where pin.count != 32 {
            throw invalid("a pinned public key must be a 32-byte SHA-256 of the SubjectPublicKeyInfo, got \(pin.count) bytes")
        }
        if pinningMode == .insteadOfChainVerification && pinnedPublicKeys.isEmpty {
            throw invalid("pinningMode .insteadOfChainVerification needs pinnedPublicKeys")
        }
        if !pinnedPublicKeys.isEmpty && certificateVerification == .insecureNoVerification {
            throw invalid("pinnedPublicKeys cannot be combined with .insecureNoVerification (which checks nothing)")
        }
        if (certificateChain == nil) != (privateKey == nil) {
            throw invalid(
                certificateChain == nil
                    ? "a private key was given without a certificate chain"
                    : "a certificate chain was given without its private key")
        }
        for name in applicationProtocols {
            let length = name.utf8.count
            if length == 0 || length > 255 {
                throw invalid("ALPN protocol names must be 1 to 255 bytes long, got \(length) for \"\(name)\"")
            }
        }
        if Set(applicationProtocols).count != applicationProtocols.count {
            throw invalid("ALPN protocol list has duplicates: \(applicationProtocols)")
        }
        if let names = cipherSuites {
            let suites = try resolvedCipherSuites ?? []
            if names.isEmpty { throw invalid("cipherSuites is empty; use nil for the defaults") }
            let versions = TLSVersion.allCases.filter { $0 >= minimumTLSVersion && $0 <= maximumTLSVersion }
            for version in versions where !suites.contains(where: { $0.version == version }) {
                throw invalid("cipherSuites has no \(version) suite, but \(version) is enabled (narrow the versions or add one)")
            }
        }
        if let names = keyExchangeGroups {
            if names.isEmpty { throw invalid("keyExchangeGroups is empty; use nil for the defaults") }
            _ = try resolvedGroups
        }
        for key in sessionTicketKeys where key.bytes.count != 80 {
            throw invalid("a session ticket key must be 80 bytes, got \(key.bytes.count)")
        }
        if let ocspResponse, ocspResponse.isEmpty {
            throw invalid("ocspResponse is empty; use nil for no staple")
        }
        if let serverName { try Self.checkServerName(serverName) }
        if case .certificates(let roots) = trustRoots, roots.isEmpty {
            // An empty list would trust nothing (every chain fails) or, with some
            // libraries, silently fall back to no roots at all: refuse it on every backend.
            throw invalid("trustRoots .certificates([]) is empty: give at least one certificate, or use .system")
        }
    }

    /// Every credential offered by default: the primary one (``certificateChain`` and
    /// ``privateKey``), then ``additionalCredentials``.
    @_spi(TLSBackendImplementation) public var primaryCredentials: [TLSCredential] {
        var result: [TLSCredential] = []
        if let certificateChain, let privateKey {
            result.append(.certificateChain(certificateChain, privateKey: privateKey, passphrase: privateKeyPassphrase))
        }
        return result + additionalCredentials
    }

    /// True when a server has something to present: primary or SNI credentials.
    @_spi(TLSBackendImplementation) public var hasServerIdentity: Bool {
        !primaryCredentials.isEmpty || !serverNameCredentials.isEmpty
    }

    /// ``cipherSuites`` as named suites; throws for an unknown name.
    @_spi(TLSBackendImplementation) public var resolvedCipherSuites: [TLSCipherSuite]? {
        get throws {
            try Self.resolve(cipherSuites, kind: "cipher suite", known: TLSCipherSuite.all.map(\.name), TLSCipherSuite.named)
        }
    }

    /// ``keyExchangeGroups`` as named groups; throws for an unknown name.
    @_spi(TLSBackendImplementation) public var resolvedGroups: [TLSGroup]? {
        get throws {
            try Self.resolve(keyExchangeGroups, kind: "key-exchange group", known: TLSGroup.all.map(\.name), TLSGroup.named)
        }
    }

    /// Looks every name up, refusing an unknown one with the list of known names.
    private static func resolve<Item>(_ names: [String]?, kind: String, known: [String],
                                      _ lookup: (String) -> Item?) throws -> [Item]? {
        try names.map { names in
            try names.map { name in
                guard let item = lookup(name) else {
                    throw TLSError(.invalidConfiguration,
                                   "unknown \(kind) \"\(name)\" (TLSKit names: \(known.joined(separator: ", ")))",
                                   backend: .tlsKit)
                }
                return item
            }
        }
    }

    /// Refuses, naming the option and the backend, every option the backend's
    /// capabilities do not cover. ``TLSBackend/makeContext(_:)`` calls it after ``validate()``.
    package func checkSupported(by capabilities: TLSCapabilities, backend: TLSBackendID) throws {
        func require(_ capability: TLSCapabilities, _ option: String, when used: Bool) throws {
            if used && !capabilities.contains(capability) {
                throw TLSError(.unsupported, "\(option) is not supported by the \(backend) backend", backend: backend)
            }
        }
        try require(.tls13, "minimumTLSVersion \(TLSVersion.tls13)", when: minimumTLSVersion >= .tls13)
        try require(.alpn, "applicationProtocols", when: !applicationProtocols.isEmpty)
        try require(.serverNameIndication, "serverNameCredentials", when: !serverNameCredentials.isEmpty)
        try require(.serverNameIndication, "serverName \"\(serverName ?? "")\" (sent as SNI)",
                    when: serverName.map(Self.isSentAsSNI) ?? false)
        try require(.mutualTLS, "clientAuthentication", when: clientAuthentication != .none)
        try require(.keyLogging, "keyLogger", when: keyLogger != nil)
        try require(.alpnSelectionCallback, "applicationProtocolSelector", when: applicationProtocolSelector != nil)
        try require(.cipherSuiteSelection, "cipherSuites", when: cipherSuites != nil)
        try require(.groupSelection, "keyExchangeGroups", when: keyExchangeGroups != nil)
        try require(.sessionResumption, "sessionTicketKeys", when: !sessionTicketKeys.isEmpty)
        try require(.multipleTicketKeys, "more than one sessionTicketKey", when: sessionTicketKeys.count > 1)
        try require(.ocspStapling, "ocspResponse", when: ocspResponse != nil)
        try require(.ocspStapling, "ocspStapling", when: ocspStapling != .none)
        try require(.customVerification, "customVerification", when: customVerification != nil)
        try require(.serverIdentitySelection, "serverIdentitySelector", when: serverIdentitySelector != nil)
    }

    /// True when a client sends `name` in the SNI extension: a DNS name (RFC 6066 §3
    /// carries no IP addresses).
    package static func isSentAsSNI(_ name: String) -> Bool { !TLSHostName.isIPAddress(name) }

    /// The ALPN list in wire format (length-prefixed names), as both libraries take it.
    @_spi(TLSBackendImplementation) public var alpnWireFormat: [UInt8] {
        var bytes: [UInt8] = []
        for name in applicationProtocols {
            bytes.append(UInt8(name.utf8.count))
            bytes.append(contentsOf: name.utf8)
        }
        return bytes
    }
}
