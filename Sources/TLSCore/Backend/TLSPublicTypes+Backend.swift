// The SPI members of public types, which a backend calls from its library's callbacks.
// (Five SPI members stay in their types' declarations because they are stored or
// protocol requirements: TLSContext.engine, TLSSession.decoded, TLSTransport.io,
// TLSBackend.makeContextEngine and TLSBackend.generateSelfSignedIdentity.)

/// A hash algorithm the backends compute for TLSKit (``TLSContextEngine/digest(_:_:)``).
@_spi(TLSBackendImplementation) public enum TLSHashAlgorithm: Sendable {
    case sha256, sha384, sha512
}

extension TLSAlert {
    /// This alert as `version` has it: certificate_required exists in TLS 1.3 only
    /// (RFC 8446 §6.2); a TLS 1.2 server without the client certificate it requires sends
    /// handshake_failure (RFC 5246 §7.4.6), as libssl does. The one rule every backend
    /// applies to the alert it sends or reports.
    @_spi(TLSBackendImplementation) public func inVersion(_ version: TLSVersion) -> TLSAlert {
        self == .certificateRequired && version < .tls13 ? .handshakeFailure : self
    }
}

extension TLSApplicationProtocolSelector {
    /// Runs the selection; a result that was not offered counts as nil.
    @_spi(TLSBackendImplementation) public func select(_ offered: [String]) -> String? {
        guard let chosen = box.select(offered), offered.contains(chosen) else { return nil }
        return chosen
    }
}

extension TLSKeyLogger {
    /// Passes one line on.
    @_spi(TLSBackendImplementation) public func log(_ line: String) { box.log(line) }

    /// Formats and passes one NSS key-log line: `LABEL <client_random hex> <secret hex>`.
    @_spi(TLSBackendImplementation) public func log(label: String, clientRandom: [UInt8], secret: [UInt8]) {
        box.log("\(label) \(TLSHex.encode(clientRandom)) \(TLSHex.encode(secret))")
    }
}

extension TLSServerNameCredentials {
    /// True when `name` (as sent in SNI) selects this entry.
    @_spi(TLSBackendImplementation) public func matches(_ name: String) -> Bool {
        let host = TLSHostName.verificationName(name).lowercased()
        return serverNames.contains { TLSHostName.pattern($0, matches: host) }
    }
}
