#if NIO
import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO
import TLSKitTestSupport

/// TLSKitServerHandler with a server identity selector that answers later, and with a
/// reloading context: the handshake waits on the event loop, then goes on.
@Suite("TLSKitNIO server identity selection and reload", .timeLimit(.minutes(5)))
struct SelectionHandlerTests {
    @Test("sockets: the selector answers from another thread; the server handler comes from a reloading context",
          arguments: backendPairs.map { ($0.0, $0.1) })
    func selectorAnswersLater(backends: (Backend, Backend)) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let fixture = try Fixture(backends.1)
        let asked = Locked<[String?]>([])
        var configuration = TLSConfiguration.makeServerConfiguration(identity: fixture.identity)
        configuration.serverIdentitySelector = TLSServerIdentitySelector { hello, completion in
            asked.withLock { $0.append(hello.serverName) }
            Thread {
                Thread.sleep(forTimeInterval: 0.05)
                completion(.defaultIdentity)
            }.start()
        }
        let reloading = try TLSReloadingContext(backend: backends.1.type, configuration: configuration)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([TLSKitServerHandler(context: reloading),
                                                                     CustomVerificationHandlerTests.Echo()])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let clientContext = try fixture.clientContext(backends.0)
        for round in 0..<2 {
            let reply = group.next().makePromise(of: String.self)
            let client = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers([
                            try TLSKitClientHandler(context: clientContext, serverHostname: "localhost"),
                            CustomVerificationHandlerTests.Greeter(reply: reply),
                        ])
                    }
                }
                .connect(host: "127.0.0.1", port: server.localAddress!.port!).get()
            #expect(try await value(of: reply.futureResult, within: .seconds(30), "the echo, round \(round)") == "hello")
            try await client.close()
            // A reload between the rounds: the next connection's handler gets generation 2
            // (same files here, the selector kept).
            if round == 0 { #expect(reloading.reload().succeeded) }
        }
        #expect(asked.withLock { $0 } == ["localhost", "localhost"])
        #expect(reloading.generation == 2)
        try await server.close()
    }
}
#endif
