/// A cipher suite TLSKit can name portably, by its IANA name and code point.
public struct TLSCipherSuite: Sendable, Hashable, CustomStringConvertible {
    /// The IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    public let name: String
    /// The two-byte code point.
    public let codePoint: UInt16
    /// The protocol version the suite belongs to.
    public let version: TLSVersion

    public var description: String { name }

    /// Every suite TLSKit names: the AEAD suites of TLS 1.3 and TLS 1.2 with (EC)DHE.
    public static let all: [TLSCipherSuite] = [
        .init(name: "TLS_AES_128_GCM_SHA256", codePoint: 0x1301, version: .tls13),
        .init(name: "TLS_AES_256_GCM_SHA384", codePoint: 0x1302, version: .tls13),
        .init(name: "TLS_CHACHA20_POLY1305_SHA256", codePoint: 0x1303, version: .tls13),
        .init(name: "TLS_AES_128_CCM_SHA256", codePoint: 0x1304, version: .tls13),
        .init(name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", codePoint: 0xC02B, version: .tls12),
        .init(name: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", codePoint: 0xC02C, version: .tls12),
        .init(name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", codePoint: 0xC02F, version: .tls12),
        .init(name: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", codePoint: 0xC030, version: .tls12),
        .init(name: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", codePoint: 0xCCA9, version: .tls12),
        .init(name: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", codePoint: 0xCCA8, version: .tls12),
        .init(name: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", codePoint: 0x009E, version: .tls12),
        .init(name: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", codePoint: 0x009F, version: .tls12),
    ]

    /// The suite with this IANA name (case-insensitive), if TLSKit names it.
    public static func named(_ name: String) -> TLSCipherSuite? {
        all.first { $0.name.uppercased() == name.uppercased() }
    }
}

/// A key-exchange group TLSKit can name portably (RFC 8446 §4.2.7 names).
public struct TLSGroup: Sendable, Hashable, CustomStringConvertible {
    /// The RFC name, e.g. `x25519`, `secp256r1`.
    public let name: String
    /// The two-byte code point.
    public let codePoint: UInt16

    public var description: String { name }

    /// Every group TLSKit names.
    public static let all: [TLSGroup] = [
        .init(name: "x25519", codePoint: 29),
        .init(name: "secp256r1", codePoint: 23),
        .init(name: "secp384r1", codePoint: 24),
        .init(name: "secp521r1", codePoint: 25),
        .init(name: "x448", codePoint: 30),
        .init(name: "ffdhe2048", codePoint: 256),
        .init(name: "ffdhe3072", codePoint: 257),
        .init(name: "ffdhe4096", codePoint: 258),
    ]

    /// The group with this name (case-insensitive; `P-256`-style aliases accepted).
    public static func named(_ name: String) -> TLSGroup? {
        let aliases = ["p-256": "secp256r1", "prime256v1": "secp256r1", "p-384": "secp384r1", "p-521": "secp521r1"]
        let canonical = aliases[name.lowercased()] ?? name.lowercased()
        return all.first { $0.name == canonical }
    }

    /// The group with this code point.
    public static func withCodePoint(_ codePoint: UInt16) -> TLSGroup? {
        all.first { $0.codePoint == codePoint }
    }
}
