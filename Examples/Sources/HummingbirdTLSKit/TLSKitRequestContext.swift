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

    /// What the connection's TLSKit handler negotiated. For HTTP/1.1 the request runs on
    /// the connection's channel; for HTTP/2 on a stream channel whose parent, the
    /// connection, holds the TLS handler. (A connection's own parent is the listening
    /// channel: look there only when the channel has no TLS handler.)
    public func tlsKitConnectionInfo() async throws -> TLSKitConnectionInfo? {
        do {
            return try await channel.tlsKitConnectionInfo().get()
        } catch ChannelPipelineError.notFound {
            guard let connection = channel.parent else { throw ChannelPipelineError.notFound }
            return try await connection.tlsKitConnectionInfo().get()
        }
    }
}
