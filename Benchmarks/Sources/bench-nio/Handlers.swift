import NIOCore

/// The TLS handlers a run puts in its pipelines: NIOSSL's, or TLSKitNIO's.
struct Handlers: Sendable {
    /// A client handler for "localhost".
    let makeClient: @Sendable () throws -> any ChannelHandler
    /// A server handler.
    let makeServer: @Sendable () throws -> any ChannelHandler
    /// The negotiated version, read from the pipeline's TLS handler.
    let version: @Sendable (ChannelPipeline.SynchronousOperations) -> String?
}
