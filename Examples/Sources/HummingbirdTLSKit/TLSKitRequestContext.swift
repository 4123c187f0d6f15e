// A Hummingbird request context that can tell what TLS the request came over. Copy it
// with TLSKitChannel.swift, or use any context of yours that keeps `source.channel`.
public import Hummingbird
public import NIOCore
public import TLSKitNIO

/// A request context that keeps the request's channel, so a route can read what TLSKit
/// negotiated: ALPN, version, cipher suite, the client's certificate.
public struct TLSKitRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The channel the request arrived on (an HTTP/2 stream channel, or the connection).
    public let channel: any Channel

    /// Made by Hummingbird for each request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// What the connection's TLSKit handler negotiated. For HTTP/2 the request runs on a
    /// stream channel; the TLS handler is on its parent, the connection.
    public func tlsKitConnectionInfo() async throws -> TLSKitConnectionInfo? {
        try await (channel.parent ?? channel).tlsKitConnectionInfo().get()
    }
}
