// TLSKitNIO's handlers for bench-nio (`--handler tlskit --backend openssl|gnutls`), in a
// file of their own: TLSKit and NIOSSL both name a `TLSConfiguration`.
import BenchSupport
import BenchTLSKit
import NIOCore
import TLSKit
import TLSKitNIO

/// TLSKitNIO handlers over the contexts bench-tlskit uses.
func tlsKitHandlers(_ arguments: BenchArguments) -> Handlers {
    let contexts = makeTLSKitContexts(arguments, backend: tlsKitBackend(arguments))
    return Handlers(
        makeClient: { try TLSKitClientHandler(context: contexts.client, serverHostname: "localhost") },
        makeServer: { TLSKitServerHandler(context: contexts.server) },
        version: { (try? $0.handler(type: TLSKitHandler.self))?.negotiatedVersion.map { "\($0)" } })
}
