/// The checks on the peer's leaf certificate that TLSKit makes itself, identically on
/// both backends, from inside each library's verification callback (so a failure still
/// fails the handshake and sends the alert): the RFC 6125 host-name rules and
/// public-key pinning. Chain building, signatures, validity times, purposes and CRLs
/// are the library's.
@_spi(TLSBackendImplementation) public struct TLSPeerPolicy: Sendable {
    /// The name the leaf must carry; nil when host names are not checked.
    @_spi(TLSBackendImplementation) public let hostname: String?
    /// Accepted SPKI SHA-256 digests; empty when not pinning.
    @_spi(TLSBackendImplementation) public let pins: Set<[UInt8]>
    /// True when pins replace chain verification.
    @_spi(TLSBackendImplementation) public let pinsOnly: Bool

    /// The policy for one session.
    @_spi(TLSBackendImplementation) public init(configuration: TLSConfiguration, role: TLSRole, serverName: String?) {
        let checkHost = role == .client && configuration.certificateVerification == .fullVerification
            && configuration.pinningMode == .inAdditionToChainVerification
        hostname = checkHost ? serverName : nil
        pins = Set(configuration.pinnedPublicKeys)
        pinsOnly = configuration.pinningMode == .insteadOfChainVerification
    }

    private init(hostname: String?, pins: Set<[UInt8]>, pinsOnly: Bool) {
        self.hostname = hostname
        self.pins = pins
        self.pinsOnly = pinsOnly
    }

    /// The same policy without the host-name check: what a backend applies when a
    /// ``TLSCustomVerifier`` checks the host name after the custom callback.
    @_spi(TLSBackendImplementation) public var withoutHostname: TLSPeerPolicy {
        TLSPeerPolicy(hostname: nil, pins: pins, pinsOnly: pinsOnly)
    }

    /// Only the host-name check of this policy.
    @_spi(TLSBackendImplementation) public var hostnameOnly: TLSPeerPolicy {
        TLSPeerPolicy(hostname: hostname, pins: [], pinsOnly: false)
    }

    /// True when ``check(leafDER:sha256:)`` has anything to check.
    @_spi(TLSBackendImplementation) public var checksLeaf: Bool { hostname != nil || !pins.isEmpty }

    /// The leaf (DER, as the library received and parsed it) against the host name and
    /// the pins: nil when it passes, else the first failure and a reason to show.
    /// `sha256` is the backend's digest, used only when pinning.
    @_spi(TLSBackendImplementation) public func check(
        leafDER: UnsafeRawBufferPointer, sha256: (UnsafeRawBufferPointer) -> [UInt8]
    ) -> (failure: TLSError.VerificationFailure, reason: String)? {
        guard checksLeaf else { return nil }
        guard let leaf = TLSLeafIdentity(der: leafDER) else {
            return (.other, "the certificate's names and public key cannot be read (malformed DER)")
        }
        if let hostname, !TLSHostName.matches(hostname, leaf: leaf) {
            let names = leaf.dnsNames + leaf.ipAddresses
            return (.hostnameMismatch, "the certificate is not valid for \(hostname): it names "
                    + (names.isEmpty ? "CN=\(leaf.commonName ?? "")" : names.joined(separator: ", ")))
        }
        if !pins.isEmpty {
            let digest = sha256(UnsafeRawBufferPointer(rebasing: leafDER[leaf.subjectPublicKeyInfo]))
            if !pins.contains(digest) {
                return (.pinMismatch, "the peer's public key (SPKI SHA-256 \(digest.map { String(format2: $0) }.joined())) is not pinned")
            }
        }
        return nil
    }
}
