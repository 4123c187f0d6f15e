#if NIO
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO
import TLSKitTestSupport

/// `customVerificationCallback` on the handlers (NIOSSL's shape): the promise completed
/// later resumes the handshake on the event loop; a rejection fails it with the category
/// and the peer reads that alert; a channel closed or a handler removed while the promise
/// is pending neither crashes nor keeps the handler alive.
@Suite("TLSKitNIO custom verification", .timeLimit(.minutes(5)))
struct CustomVerificationHandlerTests {
    static let versions: [TLSVersion] = [.tls13, .tls12]

    /// The promises the callback was handed, with the certificates it saw.
    final class Promises {
        var certificates: [[[UInt8]]] = []
        var promises: [EventLoopPromise<TLSVerificationVerdict>] = []
        var callback: TLSKitCustomVerificationCallback {
            { [self] certificates, promise in
                self.certificates.append(certificates)
                promises.append(promise)
            }
        }
    }

    /// An EmbeddedChannel pair whose client handler has the callback (or whose server
    /// handler has it and requires a client certificate, with `serverSide`).
    final class Link: EmbeddedPair {
        let serverCertificate: [UInt8]

        init(_ backends: (Backend, Backend), version: TLSVersion, callback: @escaping TLSKitCustomVerificationCallback,
             serverSide: Bool = false) throws {
            let fixture = try Fixture(backends.1)
            let clientIdentity = try backends.0.type.makeSelfSignedIdentity(
                commonName: "client.example", subjectAlternativeNames: ["client.example"], validityDays: 2)
            let serverContext = try fixture.serverContext {
                $0.maximumTLSVersion = version
                if serverSide {
                    $0.clientAuthentication = .required
                    $0.trustRoots = .certificates([.pem(clientIdentity.certificateChainPEM)])
                }
            }
            let clientContext = try fixture.clientContext(backends.0) {
                $0.certificateChain = .pem(clientIdentity.certificateChainPEM)
                $0.privateKey = .pem(clientIdentity.privateKeyPEM)
            }
            serverCertificate = try Self.der(serverSide ? clientIdentity.certificateChainPEM : fixture.identity.certificateChainPEM)
            try super.init(
                clientHandler: TLSKitClientHandler(context: clientContext, serverHostname: "localhost",
                                                   customVerificationCallback: serverSide ? nil : callback),
                serverHandler: TLSKitServerHandler(context: serverContext, customVerificationCallback: serverSide ? callback : nil))
        }

        static func der(_ pem: String) throws -> [UInt8] {
            let body = pem.components(separatedBy: "-----BEGIN CERTIFICATE-----")[1]
                .components(separatedBy: "-----END CERTIFICATE-----")[0]
            return [UInt8](try #require(Data(base64Encoded: body.filter { !$0.isWhitespace })))
        }

        /// Closes both channels (a close after the handshake waits for the peer's
        /// close_notify at most the shutdown time-out, which is run out here).
        func tearDown() throws {
            let closes = [client.close(), server.close()]
            try exchange()
            client.embeddedEventLoop.advanceTime(by: .seconds(6))
            server.embeddedEventLoop.advanceTime(by: .seconds(6))
            try exchange()
            _ = closes
        }
    }

    @Test("the promise completed later: no handshakeCompleted before, the handshake resumes after; data flows",
          arguments: backendPairs.map { ($0.0, $0.1) }, versions)
    func acceptLater(backends: (Backend, Backend), version: TLSVersion) throws {
        let promises = Promises()
        let link = try Link(backends, version: version, callback: promises.callback)
        try link.activate()
        try link.exchange()
        #expect(promises.promises.count == 1)
        #expect(promises.certificates == [[link.serverCertificate]], "the chain as sent, leaf first")
        #expect(link.clientEvents.events == ["active"], "no handshake completion while the verdict is pending")
        try link.exchange()
        #expect(promises.promises.count == 1, "asked once")

        promises.promises[0].succeed(.accept())
        try link.exchange()
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(nil)"])
        #expect(link.serverEvents.events == ["active", "handshakeCompleted(nil)"])
        #expect(link.clientHandler.peerVerification == .customVerification(hostnameVerified: true))
        link.client.writeAndFlush(ByteBuffer(string: "ping"), promise: nil)
        try link.exchange()
        #expect(link.serverEvents.text == "ping")
        #expect(promises.promises.count == 1)
        try link.tearDown()
    }

    @Test("a rejection through the promise (a verdict, or a failed promise): the category's error, the peer reads its alert",
          arguments: backendPairs.map { ($0.0, $0.1) }, versions)
    func rejectLater(backends: (Backend, Backend), version: TLSVersion) throws {
        struct LookupFailed: Error {}
        let outcomes: [(Result<TLSVerificationVerdict, any Error>, TLSError.VerificationFailure, TLSAlert)] = [
            (.success(.reject(.unknownIssuer)), .unknownIssuer, .unknownCA),
            (.failure(TLSError(.certificateVerificationFailed, "OCSP says revoked", backend: "app", verificationFailure: .revoked)),
             .revoked, .certificateRevoked),
            (.failure(LookupFailed()), .other, .badCertificate),
        ]
        for (result, failure, alert) in outcomes {
            let promises = Promises()
            let link = try Link(backends, version: version, callback: promises.callback)
            try link.activate()
            try link.exchange()
            let promise = try #require(promises.promises.first)
            promise.completeWith(result)
            try link.exchange()
            let clientError = link.clientEvents.tlsErrors.first
            let serverError = link.serverEvents.tlsErrors.first
            let context = "\(failure): \(String(describing: clientError)) / \(String(describing: serverError))"
            #expect(clientError?.code == .certificateVerificationFailed, "\(context)")
            #expect(clientError?.verificationFailure == failure, "\(context)")
            #expect(clientError?.alert == alert, "\(context)")
            #expect(serverError?.code == .alertReceived, "\(context)")
            #expect(serverError?.alert == alert, "the alert the server read: \(context)")
            #expect(!link.client.isActive)
            try link.tearDown()
        }
    }

    @Test("server side: the client certificate accepted later through the promise (GnuTLS server; OpenSSL answers at once)",
          arguments: backendPairs.map { ($0.0, $0.1) }, versions)
    func serverSide(backends: (Backend, Backend), version: TLSVersion) throws {
        let promises = Promises()
        let atOnce = backends.1.type.id == .openSSL
        let callback: TLSKitCustomVerificationCallback = atOnce
            ? { certificates, promise in promises.callback(certificates, promise); promise.succeed(.accept()) }
            : promises.callback
        let link = try Link(backends, version: version, callback: callback, serverSide: true)
        try link.activate()
        try link.exchange()
        #expect(promises.certificates == [[link.serverCertificate]], "the client's chain as sent")
        if !atOnce {
            #expect(link.serverEvents.events == ["active"])
            promises.promises[0].succeed(.accept())
            try link.exchange()
        }
        #expect(link.serverEvents.events == ["active", "handshakeCompleted(nil)"])
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(nil)"])
        #expect(link.serverHandler.peerVerification == .customVerification(hostnameVerified: false))
        try link.tearDown()
    }

    @Test("the channel closes, or the handler is removed, while the promise is pending: no crash, handler not kept",
          arguments: allBackends)
    func closedWhilePending(backend: Backend) throws {
        for removeHandler in [false, true] {
            let promises = Promises()
            weak var weakHandler: TLSKitClientHandler?
            do {
                let link = try Link((backend, backend), version: .tls13, callback: promises.callback)
                weakHandler = link.clientHandler
                try link.activate()
                try link.exchange()
                #expect(promises.promises.count == 1)
                if removeHandler {
                    try completed(link.client.pipeline.syncOperations.removeHandler(link.clientHandler), "the removal")
                } else {
                    let closed = link.client.close()
                    // close(.all) during a handshake waits for it at most shutdownTimeout.
                    link.client.embeddedEventLoop.advanceTime(by: .seconds(6))
                    try completed(closed, "the close")
                }
                try link.tearDown()
            }
            #expect(weakHandler == nil, "the pending verification keeps no handler alive (removed: \(removeHandler))")
            // The application still owns the promise; completing it now is harmless (and
            // NIO's debug leak check would trap on a promise dropped uncompleted).
            promises.promises[0].succeed(.accept())
        }
    }

    @Test("sockets: the promise completed from another thread; TLSKitClientTLSProvider passes the callback on",
          arguments: backendPairs.map { ($0.0, $0.1) })
    func socketsLater(backends: (Backend, Backend)) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let fixture = try Fixture(backends.1)
        let serverContext = try fixture.serverContext()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([TLSKitServerHandler(context: serverContext), Echo()])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let asked = Locked(0)
        let provider = try TLSKitClientTLSProvider<ClientBootstrap>(
            context: try fixture.clientContext(backends.0), serverHostname: "localhost",
            customVerificationCallback: { certificates, promise in
                asked.withLock { $0 += 1 }
                Thread { promise.succeed(certificates.count == 1 ? .accept() : .reject(.other)) }.start()
            })
        let reply = group.next().makePromise(of: String.self)
        let client = try await NIOClientTCPBootstrap(ClientBootstrap(group: group), tls: provider)
            .enableTLS()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Greeter(reply: reply))
                }
            }
            .connect(host: "127.0.0.1", port: server.localAddress!.port!).get()
        #expect(try await value(of: reply.futureResult, within: .seconds(30), "the echo") == "hello")
        #expect(asked.withLock { $0 } == 1)
        try await client.close()
        try await server.close()
    }

    /// Echoes what it reads.
    final class Echo: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }

    /// Says hello once the handshake completed and passes on the answer.
    final class Greeter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: EventLoopPromise<String>
        var received = ""
        init(reply: EventLoopPromise<String>) { self.reply = reply }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event {
                context.writeAndFlush(NIOAny(ByteBuffer(string: "hello")), promise: nil)
            }
            context.fireUserInboundEventTriggered(event)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            if received == "hello" { reply.succeed(received) }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            reply.fail(error)
        }
    }
}
#endif
