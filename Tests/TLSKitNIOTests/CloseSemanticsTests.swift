#if NIO
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO

/// What a real socket does on `close(mode: .output)` and EmbeddedChannel does not (it
/// closes entirely): the output is shut, the channel stays open, later writes fail with
/// `ChannelError.outputClosed`. Goes between the channel and the TLS handler.
final class OutputHalfCloser: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var outputClosed = false
    /// When set, every write fails with it (a transport that broke).
    var writeFailure: (any Error)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if let writeFailure { promise?.fail(writeFailure); return }
        if outputClosed { promise?.fail(ChannelError.outputClosed); return }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .output {
            outputClosed = true
            promise?.succeed()
        } else {
            context.close(mode: mode, promise: promise)
        }
    }
}

/// Closes the channel from inside the first `channelRead` it sees, then passes the read on.
final class CloseOnFirstRead: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var closePromise: EventLoopFuture<Void>?
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if closePromise == nil {
            let promise = context.eventLoop.makePromise(of: Void.self)
            closePromise = promise.futureResult
            context.close(promise: promise)
        }
        context.fireChannelRead(data)
    }
}

struct TransportBroke: Error, Equatable {}

/// Close, half-close, unwrapping and every promise's outcome, as NIOSSLHandler behaves
/// (issue 22 §1–§3), on each backend and each version.
@Suite("TLSKitNIO: close, half-close, stopTLS and promises", .timeLimit(.minutes(10)))
struct CloseSemanticsTests {
    static let versions: [TLSVersion] = [.tls13, .tls12]
    static let cases = allBackends.flatMap { backend in versions.map { (backend, $0) } }

    /// A pair whose channels half-close like sockets, with half-closure allowed on both.
    private func halfClosingPair(_ backend: Backend, _ version: TLSVersion, halfClosure: Bool = true,
                                 clientMiddle: [any ChannelHandler] = []) throws -> (EmbeddedPair, OutputHalfCloser, OutputHalfCloser) {
        let fixture = try Fixture(backend)
        let server = try fixture.serverContext { $0.minimumTLSVersion = version; $0.maximumTLSVersion = version }
        let client = try fixture.clientContext()
        let clientHead = OutputHalfCloser(), serverHead = OutputHalfCloser()
        let link = try EmbeddedPair(client: client, server: server, clientHead: [clientHead], serverHead: [serverHead],
                                    clientMiddle: clientMiddle)
        if halfClosure {
            try completed(link.client.setOption(ChannelOptions.allowRemoteHalfClosure, value: true), "setOption")
            try completed(link.server.setOption(ChannelOptions.allowRemoteHalfClosure, value: true), "setOption")
        }
        try link.activate()
        try link.exchange()
        #expect(link.clientHandler.tlsVersion == version)
        return (link, clientHead, serverHead)
    }

    /// How many alert records (type 21) a TLS 1.2 side sent: its close_notify is one.
    private func alerts(_ wire: [ByteBuffer]) -> Int { recordTypes(wire).filter { $0 == 21 }.count }

    @Test("close(mode: .all) after close(mode: .output) waits for the peer's close_notify (executeThenClose)",
          arguments: cases)
    func closeAllAfterCloseOutput(backend: Backend, version: TLSVersion) throws {
        let (link, _, _) = try halfClosingPair(backend, version)
        let outputClosed = link.client.close(mode: .output)
        let closed = link.client.close()
        try completed(outputClosed, "close(mode: .output)")
        // Still waiting, and no error: the second shutdown() said "call again".
        #expect(link.client.isActive)
        #expect(link.clientEvents.errors.isEmpty, "\(link.clientEvents.errors)")
        try link.exchange()
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(nil)", "inputClosed"])
        // The server answers, then closes its side: the client reads the answer, then ends.
        link.write(server: "answer")
        let serverClosed = link.server.close(mode: .output)
        try link.exchange()
        try completed(serverClosed, "the server's close")
        try completed(closed, "the client's close(mode: .all)")
        #expect(link.clientEvents.text == "answer")
        #expect(link.clientEvents.summary ==
                ["active", "handshakeCompleted(nil)", "read", "readComplete", "shutdownCompleted", "inactive"])
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(nil)", "inputClosed", "shutdownCompleted", "inactive"])
        #expect(link.clientEvents.errors.isEmpty && link.serverEvents.errors.isEmpty)
        if version == .tls12 { #expect(alerts(link.clientWire) == 1, "one close_notify, sent once") }
    }

    @Test("close(mode: .all) after close(mode: .output), the peer silent: closed after the shutdown time-out",
          arguments: allBackends)
    func closeAllAfterCloseOutputTimesOut(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13)
        try completed(link.client.close(mode: .output), "close(mode: .output)")
        let closed = link.client.close()
        link.client.embeddedEventLoop.advanceTime(by: .milliseconds(4_999))
        #expect(link.client.isActive)
        link.client.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        try completed(closed, "the close")
        #expect(link.clientEvents.summary == ["active", "handshakeCompleted(nil)", "inactive"])
        #expect(link.clientEvents.errors.isEmpty)
    }

    @Test("one ChannelEvent.inputClosed per connection: the transport's after close_notify is swallowed",
          arguments: allBackends)
    func oneInputClosed(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13)
        try completed(link.server.close(mode: .output), "the server's close(mode: .output)")
        try link.exchange()
        // Then the transport's own end of input (the TCP FIN).
        link.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(nil)", "inputClosed"])
        #expect(link.client.isActive)
    }

    @Test("EOF without close_notify, half-closure allowed: a non-fatal unexpectedEOF, inputClosed, still writable",
          arguments: cases)
    func uncleanHalfClosure(backend: Backend, version: TLSVersion) throws {
        let (link, _, _) = try halfClosingPair(backend, version)
        link.write(server: "partial")
        try link.exchange()
        link.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(link.clientEvents.summary ==
                ["active", "handshakeCompleted(nil)", "read", "readComplete", "error(unexpectedEOF)", "inputClosed"])
        #expect(link.clientEvents.tlsErrors.first?.backend == backend.type.id)
        #expect(link.client.isActive)
        // Our side still sends, encrypted.
        link.write(client: "still here")
        try link.exchange()
        #expect(link.serverEvents.text == "still here")
        // And a close does not wait for a close_notify that cannot come.
        try completed(link.client.close(), "the close")
        #expect(!link.client.isActive)
        #expect(link.clientEvents.tlsErrors.count == 1)
    }

    @Test("EOF without close_notify, no half-closure: the unexpectedEOF error ends the connection", arguments: allBackends)
    func uncleanWithoutHalfClosure(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13, halfClosure: false)
        link.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(link.clientEvents.tlsErrors.map(\.code) == [.unexpectedEOF])
        #expect(!link.client.isActive)
    }

    @Test("close(mode: .output) sends the writes not yet flushed first, as NIOSSL's does", arguments: cases)
    func closeOutputFlushes(backend: Backend, version: TLSVersion) throws {
        let (link, _, _) = try halfClosingPair(backend, version)
        let unflushed = link.client.write(ByteBuffer(string: "unflushed"))
        let closed = link.client.close(mode: .output)
        try link.exchange()
        try completed(unflushed, "the unflushed write")
        try completed(closed, "close(mode: .output)")
        #expect(link.serverEvents.text == "unflushed")
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(nil)", "read", "readComplete", "inputClosed"])
        // Output closed: the next write fails with NIO's own error.
        #expect(throws: ChannelError.outputClosed) {
            try completed(link.client.writeAndFlush(ByteBuffer(string: "late")), "a write after close(mode: .output)")
        }
    }

    @Test("close(mode: .output) during the handshake: the buffered writes, then close_notify; later writes fail",
          arguments: allBackends)
    func closeOutputDuringHandshake(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let link = try EmbeddedPair(client: fixture.clientContext(), server: fixture.serverContext(),
                                    clientHead: [OutputHalfCloser()])
        try completed(link.server.setOption(ChannelOptions.allowRemoteHalfClosure, value: true), "setOption")
        try link.activate()
        let first = link.client.write(ByteBuffer(string: "first"))
        let closed = link.client.close(mode: .output)
        #expect(throws: ChannelError.outputClosed) {
            try completed(link.client.writeAndFlush(ByteBuffer(string: "after")), "a write after close(mode: .output)")
        }
        try link.exchange()
        try completed(first, "the buffered write")
        try completed(closed, "close(mode: .output)")
        #expect(link.serverEvents.text == "first")
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(nil)", "read", "readComplete", "inputClosed"])
    }

    @Test("ciphertext after the peer's close_notify is ignored (RFC 8446 §6.1); the channel stays writable",
          arguments: allBackends)
    func dataAfterCloseNotifyIgnored(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13)
        try completed(link.server.close(mode: .output), "the server's close(mode: .output)")
        try link.exchange()
        try link.client.writeInbound(ByteBuffer(bytes: [23, 3, 3, 0, 5, 1, 2, 3, 4, 5]))
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(nil)", "inputClosed"])
        #expect(link.client.isActive)
        link.write(client: "reply")
        try link.exchange()
        #expect(link.serverEvents.text == "reply")
    }

    @Test("writes on a closed channel fail with ChannelError.ioOnClosedChannel", arguments: allBackends)
    func writeOnClosedChannel(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13, halfClosure: false)
        let closed = link.client.close()
        try link.exchange()
        try completed(closed, "the close")
        #expect(throws: ChannelError.ioOnClosedChannel) {
            try completed(link.client.writeAndFlush(ByteBuffer(string: "x")), "a write after close")
        }
    }

    // MARK: - Every promise completed

    @Test("a transport that fails the ciphertext write fails every write of that flush", arguments: allBackends)
    func transportWriteFailure(backend: Backend) throws {
        let (link, clientHead, _) = try halfClosingPair(backend, .tls13)
        clientHead.writeFailure = TransportBroke()
        let first = link.client.write(ByteBuffer(string: "one"))
        let second = link.client.writeAndFlush(ByteBuffer(string: "two"))
        #expect(throws: TransportBroke()) { try completed(first, "the first write") }
        #expect(throws: TransportBroke()) { try completed(second, "the second write") }
    }

    @Test("removed mid-flight: buffered writes and a waiting close fail with invalidState; the timer does nothing",
          arguments: allBackends)
    func removalMidFlight(backend: Backend) throws {
        // During the handshake: a buffered write and a pending close(mode: .output).
        let fixture = try Fixture(backend)
        let early = try EmbeddedPair(client: fixture.clientContext(), server: fixture.serverContext(),
                                     clientHead: [OutputHalfCloser()])
        try early.activate()
        let write = early.client.writeAndFlush(ByteBuffer(string: "never sent"))
        let closedOutput = early.client.close(mode: .output)
        try completed(early.client.pipeline.syncOperations.removeHandler(early.clientHandler), "the removal")
        for (future, what) in [(write, "the write"), (closedOutput, "close(mode: .output)")] {
            #expect(throws: TLSError.self, "\(what)") { try completed(future, what) }
            do { try completed(future, what) } catch let error as TLSError { #expect(error.code == .invalidState) } catch {}
        }

        // While waiting for the peer's close_notify.
        let (link, _, _) = try halfClosingPair(backend, .tls13)
        let closed = link.client.close()
        try completed(link.client.pipeline.syncOperations.removeHandler(link.clientHandler), "the removal")
        do {
            try completed(closed, "the close")
            Issue.record("the close succeeded after the handler was removed")
        } catch let error as TLSError {
            #expect(error.code == .invalidState)
        }
        link.client.embeddedEventLoop.advanceTime(by: .seconds(10))  // the shutdown timer: nothing happens
        #expect(link.client.isActive)
        #expect(link.clientEvents.errors.isEmpty)
    }

    @Test("a close from inside a write's promise callback: every promise completes, one close_notify",
          arguments: allBackends)
    func closeFromWritePromise(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let server = try fixture.serverContext { $0.maximumTLSVersion = .tls12 }
        let link = try EmbeddedPair(client: fixture.clientContext(), server: server)
        let first = link.client.write(ByteBuffer(string: "one,"))
        var closed: EventLoopFuture<Void>?
        first.whenComplete { _ in closed = link.client.close() }
        let second = link.client.writeAndFlush(ByteBuffer(string: "two"))
        try link.activate()
        try link.exchange()
        try completed(first, "the first write")
        try completed(second, "the second write")
        try completed(try #require(closed), "the close issued from the promise")
        #expect(link.serverEvents.text == "one,two")
        #expect(alerts(link.clientWire) == 1)
        #expect(link.clientEvents.summary == ["active", "handshakeCompleted(nil)", "shutdownCompleted", "inactive"])
        #expect(link.serverEvents.errors.isEmpty && link.clientEvents.errors.isEmpty)
    }

    @Test("a close from inside channelRead: the read is delivered, one close_notify, the close completes",
          arguments: allBackends)
    func closeFromChannelRead(backend: Backend) throws {
        let closer = CloseOnFirstRead()
        let (link, _, _) = try halfClosingPair(backend, .tls12, halfClosure: false, clientMiddle: [closer])
        link.server.write(ByteBuffer(string: "a"), promise: nil)
        link.server.write(ByteBuffer(string: "b"), promise: nil)
        link.server.flush()
        try link.exchange()
        try completed(try #require(closer.closePromise), "the close from channelRead")
        #expect(link.clientEvents.text == "ab")
        #expect(alerts(link.clientWire) == 1)
        #expect(link.clientEvents.summary ==
                ["active", "handshakeCompleted(nil)", "read", "readComplete", "shutdownCompleted", "inactive"])
        #expect(link.clientEvents.errors.isEmpty && link.serverEvents.errors.isEmpty)
    }

    // MARK: - Names and accessors

    @Test("serverHostname nil: the certificate is verified against the peer's IP address, and no SNI is sent",
          arguments: allBackends)
    func verifiesPeerAddress(backend: Backend) throws {
        let fixture = try Fixture(backend)  // SANs: localhost and 127.0.0.1
        let link = try EmbeddedPair(client: fixture.clientContext(), server: fixture.serverContext(), serverHostname: nil)
        try link.activate()  // to 127.0.0.1
        try link.exchange()
        #expect(link.clientHandler.peerVerification == .verified)
        #expect(link.serverHandler.requestedServerName == nil)
        #expect(try link.client.pipeline.syncOperations.tlsKitTLSVersion() == .tls13)

        let other = try EmbeddedPair(client: fixture.clientContext(), server: fixture.serverContext(), serverHostname: nil)
        try completed(other.server.connect(to: SocketAddress(ipAddress: "10.9.8.7", port: 443)), "connect")
        try completed(other.client.connect(to: SocketAddress(ipAddress: "10.9.8.7", port: 443)), "connect")
        try other.exchange()
        let error = try #require(other.clientEvents.tlsErrors.first)
        #expect(error.code == .certificateVerificationFailed)
        #expect(error.verificationFailure == .hostnameMismatch, "\(error)")
        #expect(other.serverEvents.tlsErrors.first?.alert == .badCertificate)
    }

    // MARK: - stopTLS

    @Test("stopTLS: close_notify both ways, the handler leaves, the bytes after it arrive in plaintext",
          arguments: backendPairs.flatMap { pair in versions.map { (pair.0, pair.1, $0) } })
    func stopTLS(client clientBackend: Backend, server serverBackend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(serverBackend)
        let server = try fixture.serverContext { $0.minimumTLSVersion = version; $0.maximumTLSVersion = version }
        let link = try EmbeddedPair(client: fixture.clientContext(clientBackend), server: server)
        try completed(link.server.setOption(ChannelOptions.allowRemoteHalfClosure, value: true), "setOption")
        try link.activate()
        try link.exchange()
        link.write(client: "over TLS")
        let clientStopped = link.client.eventLoop.makePromise(of: Void.self)
        link.clientHandler.stopTLS(promise: clientStopped)
        try link.exchange()
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(nil)", "read", "readComplete", "inputClosed"])
        // The server stops too; its close_notify and then plaintext leave in one buffer.
        let serverStopped = link.server.eventLoop.makePromise(of: Void.self)
        link.serverHandler.stopTLS(promise: serverStopped)
        try completed(serverStopped.futureResult, "the server's stopTLS")
        var last = try #require(try link.server.readOutbound(as: ByteBuffer.self))
        last.writeString("PLAIN")
        try link.client.writeInbound(last)
        try completed(clientStopped.futureResult, "the client's stopTLS")
        #expect(link.clientEvents.summary == ["active", "handshakeCompleted(nil)", "shutdownCompleted", "read", "readComplete"])
        #expect(link.clientEvents.text == "PLAIN")
        #expect(throws: ChannelPipelineError.notFound) {
            try link.client.pipeline.syncOperations.handler(type: TLSKitClientHandler.self)
        }
        // The channel is plaintext now, both ways.
        try link.client.writeAndFlush(ByteBuffer(string: "clear")).wait()
        #expect(try link.client.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "clear")
        #expect(link.client.isActive && link.clientEvents.errors.isEmpty)
    }

    @Test("stopTLS unanswered: after the time-out the handler leaves all the same, the error fails the promise",
          arguments: allBackends)
    func stopTLSTimesOut(backend: Backend) throws {
        let (link, _, _) = try halfClosingPair(backend, .tls13)
        let stopped = link.client.eventLoop.makePromise(of: Void.self)
        link.clientHandler.stopTLS(promise: stopped)
        #expect(throws: ChannelError.outputClosed) {
            try completed(link.client.writeAndFlush(ByteBuffer(string: "x")), "a write while unwrapping")
        }
        link.client.embeddedEventLoop.advanceTime(by: .seconds(5))
        do {
            try completed(stopped.futureResult, "stopTLS")
            Issue.record("stopTLS succeeded without the peer's close_notify")
        } catch let error as TLSError {
            #expect(error.code == .timedOut)
        }
        #expect(link.clientEvents.tlsErrors.map(\.code) == [.timedOut])
        #expect(link.client.isActive)
    }
}
#endif
