// What every example program shares: `--backend OpenSSL|GnuTLS` and PEM files.
public import ArgumentParser
import Foundation
public import TLSKit

/// A backend compiled into this build, chosen on the command line by its name.
public struct BackendChoice: ExpressibleByArgument, Sendable, CustomStringConvertible {
    /// The backend type (`OpenSSLBackend.self` or `GnuTLSBackend.self`).
    public let type: any TLSBackend.Type

    /// Parses `OpenSSL` or `GnuTLS` (any case); nil for a backend this build lacks.
    public init?(argument: String) {
        guard let type = TLSBuiltInBackends.available.first(where: { $0.id.name.lowercased() == argument.lowercased() }) else { return nil }
        self.type = type
    }

    /// Wraps a backend type.
    public init(_ type: any TLSBackend.Type) { self.type = type }

    /// The accepted names.
    public static var allValueStrings: [String] { TLSBuiltInBackends.available.map { $0.id.name } }

    /// The backend's name.
    public var description: String { type.id.name }
    /// The backend's name, for `--help`.
    public var defaultValueDescription: String { type.id.name }
}

/// Reads a text file (a PEM certificate or key), with an error that names it.
public func readPEM(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read \(path)")
    }
    return String(decoding: data, as: UTF8.self)
}

/// A certificate chain and key from PEM files: a server's or a client's identity.
public func loadIdentity(certificate: String, key: String) throws -> TLSIdentity {
    TLSIdentity(certificateChainPEM: try readPEM(certificate), privateKeyPEM: try readPEM(key))
}
