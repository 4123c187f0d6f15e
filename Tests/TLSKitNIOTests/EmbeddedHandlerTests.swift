#if NIO
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing
import TLSKit
import TLSKitNIO

/// The handlers on `EmbeddedChannel` pairs: NIOSSLHandler's event contract, exactly.
/// With both traits every (client backend, server backend) pair runs: cross-backend over NIO.
@Suite("TLSKitNIO on EmbeddedChannel", .timeLimit(.minutes(10)))
struct EmbeddedHandlerTests {
    static let versions: [TLSVersion] = [.tls13, .tls12]

    private func pair(_ backends: (Backend, Backend), version: TLSVersion = .tls13,
                      client change: (inout TLSConfiguration) -> Void = { _ in },
                      server serverChange: (inout TLSConfiguration) -> Void = { _ in }) throws -> EmbeddedPair {
        let fixture = try Fixture(backends.1)
        let server = try fixture.serverContext {
            $0.minimumTLSVersion = version; $0.maximumTLSVersion = version
            $0.applicationProtocols = ["h2", "http/1.1"]
            serverChange(&$0)
        }
        let client = try fixture.clientContext(backends.0) {
            $0.applicationProtocols = ["h2"]
            change(&$0)
        }
        return try EmbeddedPair(client: client, server: server)
    }

    @Test("event order: active, handshakeCompleted(ALPN), reads, close_notify, shutdownCompleted",
          arguments: backendPairs.map { ($0.0, $0.1) }, versions)
    func eventOrder(backends: (Backend, Backend), version: TLSVersion) throws {
        let link = try pair(backends, version: version)
        try link.activate()
        // The ClientHello is out, nothing answered it: nothing negotiated yet.
        #expect(try link.client.pipeline.syncOperations.tlsKitConnectionInfo() == nil)
        try link.exchange()
        #expect(link.clientEvents.events == ["active", "handshakeCompleted(h2)"])
        #expect(link.serverEvents.events == ["active", "handshakeCompleted(h2)"])
        #expect(link.clientHandler.negotiatedVersion == version)
        #expect(link.serverHandler.negotiatedApplicationProtocol == "h2")
        #expect(link.clientHandler.peerVerification == .verified)
        #expect(link.serverHandler.peerVerification == .noPeerCertificate)
        #expect(link.clientHandler.cipherSuite?.hasPrefix("TLS_") == true)

        link.write(client: "ping")
        try link.exchange()
        link.write(server: "pong")
        try link.exchange()
        #expect(link.serverEvents.text == "ping")
        #expect(link.clientEvents.text == "pong")

        let closed = link.client.close()
        try link.exchange()
        try completed(closed, "the close")
        #expect(link.clientEvents.summary ==
                ["active", "handshakeCompleted(h2)", "read", "readComplete", "shutdownCompleted", "inactive"])
        #expect(link.serverEvents.summary ==
                ["active", "handshakeCompleted(h2)", "read", "readComplete", "shutdownCompleted", "inactive"])
        // The last record each side sent is its close_notify (an alert in 1.2, wrapped in 1.3).
        #expect(recordTypes(link.clientWire).last == (version == .tls13 ? 23 : 21))
        #expect(link.clientEvents.errors.isEmpty && link.serverEvents.errors.isEmpty)
    }

    @Test("the handshake starts in handlerAdded on an already active channel", arguments: allBackends)
    func handlerAddedOnActiveChannel(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let channel = EmbeddedChannel()
        try completed(channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)), "connect")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        try channel.pipeline.syncOperations.addHandler(
            TLSKitClientHandler(context: fixture.clientContext(), serverHostname: "localhost"))
        let hello = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(hello.getInteger(at: 0, as: UInt8.self) == 22)  // a handshake record: ClientHello
        try completed(channel.close(), "the close")  // during the handshake: at once
    }

    @Test("close(mode: .all) during the handshake closes at once, as NIOSSL's does: a stalled peer holds nothing",
          arguments: allBackends)
    func closeDuringHandshake(backend: Backend) throws {
        let link = try pair((backend, backend))
        try link.activate()
        let written = link.client.writeAndFlush(ByteBuffer(string: "before close"))
        // The server never answered the ClientHello; no time passes.
        let closed = link.client.close()
        try completed(closed, "the close")
        #expect(throws: ChannelError.ioOnClosedChannel) { try completed(written, "the buffered write") }
        #expect(!link.client.isActive)
        #expect(link.clientEvents.events == ["active", "inactive"])
        // What left: the ClientHello only, no close_notify (no session to close).
        #expect(recordTypes(link.clientWire + Array(sequence(state: link.client) { try? $0.readOutbound(as: ByteBuffer.self) ?? nil })) == [22])
    }

    @Test("writes and flushes before the handshake are sent, in order, once it completes", arguments: allBackends)
    func writesBeforeHandshake(backend: Backend) throws {
        let link = try pair((backend, backend))
        let first = link.client.write(ByteBuffer(string: "one,"))
        link.client.flush()
        let second = link.client.write(ByteBuffer(string: "two,"))
        let third = link.client.writeAndFlush(ByteBuffer(string: "three"))
        let unflushed = link.client.write(ByteBuffer(string: "-later"))
        try link.activate()
        try link.exchange()
        #expect(link.serverEvents.text == "one,two,three")
        try completed(first, "first"); try completed(second, "second"); try completed(third, "third")
        // The data that came with the client's Finished is delivered in the same batch.
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(h2)", "read", "readComplete"])
        link.client.flush()
        try link.exchange()
        try completed(unflushed, "the write flushed later")
        #expect(link.serverEvents.text == "one,two,three-later")
    }

    @Test("mutual TLS: the server sees the client's certificate, verified", arguments: backendPairs.map { ($0.0, $0.1) })
    func mutualTLS(backends: (Backend, Backend)) throws {
        let clientIdentity = try backends.0.type.makeSelfSignedIdentity(
            commonName: "client", subjectAlternativeNames: ["client.example"], validityDays: 2)
        let link = try pair(backends, client: {
            $0.certificateChain = .pem(clientIdentity.certificateChainPEM)
            $0.privateKey = .pem(clientIdentity.privateKeyPEM)
        }, server: {
            $0.clientAuthentication = .required
            $0.trustRoots = .certificates([.pem(clientIdentity.certificateChainPEM)])
        })
        try link.activate()
        try link.exchange()
        #expect(link.serverEvents.events == ["active", "handshakeCompleted(h2)"])
        let info = try #require(try link.server.pipeline.syncOperations.tlsKitConnectionInfo())
        #expect(info.peerVerification == .verifiedWithoutHostname)
        #expect(info.peerCertificateChain.count == 1)
        #expect(info.peerCertificate?.dnsNames.contains("client.example") == true)
        let future = link.server.tlsKitPeerCertificate()
        link.server.embeddedEventLoop.run()
        let peer = try completed(future, "tlsKitPeerCertificate")
        #expect(peer?.commonName == "client")
    }

    @Test("verification failure: the TLSError with its category, the alert sent, then closed",
          arguments: backendPairs.map { ($0.0, $0.1) })
    func verificationFailure(backends: (Backend, Backend)) throws {
        let stranger = try backends.0.type.makeSelfSignedIdentity(
            commonName: "stranger", subjectAlternativeNames: ["localhost"], validityDays: 2)
        let link = try pair(backends, client: {
            $0.trustRoots = .certificates([.pem(stranger.certificateChainPEM)])
        })
        try link.activate()
        try link.exchange()
        let error = try #require(link.clientEvents.tlsErrors.first)
        #expect(error.code == .certificateVerificationFailed)
        // The server's certificate is a lone self-signed one that the client does not
        // trust (it trusts only "stranger"): OpenSSL's DEPTH_ZERO_SELF_SIGNED_CERT, GnuTLS's
        // SIGNER_NOT_FOUND on a single self-issued certificate — `selfSigned` on both
        // (Docs/verification.md), never `unknownIssuer`.
        #expect(error.verificationFailure == .selfSigned, "\(error)")
        #expect(error.alert == .unknownCA, "\(error)")
        #expect(link.clientEvents.events == ["active", "error(certificateVerificationFailed)", "inactive"])
        #expect(!link.client.isActive)
        // The alert went out before the close (in TLS 1.3 it may be encrypted): the
        // server learnt why.
        let serverError = try #require(link.serverEvents.tlsErrors.first)
        #expect(serverError.code == .alertReceived, "\(serverError)")
        // selfSigned's alert, the same whichever backend sent or received it.
        #expect(serverError.alert == .unknownCA, "\(serverError)")
        #expect(link.serverEvents.events == ["active", "error(alertReceived)", "inactive"])
        #expect(!link.server.isActive)
    }

    @Test("EOF without close_notify fires TLSError unexpectedEOF", arguments: allBackends)
    func uncleanShutdown(backend: Backend) throws {
        let link = try pair((backend, backend))
        try link.activate()
        try link.exchange()
        link.write(server: "partial")
        try link.exchange()
        // The peer's transport ends with no close_notify.
        link.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let error = try #require(link.clientEvents.tlsErrors.first)
        #expect(error.code == .unexpectedEOF, "\(error)")
        #expect(link.clientEvents.text == "partial")
        #expect(!link.client.isActive)
    }

    @Test("EOF during the handshake fires TLSError unexpectedEOF", arguments: allBackends)
    func eofDuringHandshake(backend: Backend) throws {
        let link = try pair((backend, backend))
        try link.activate()
        _ = try link.client.readOutbound(as: ByteBuffer.self)  // the ClientHello goes nowhere
        link.client.pipeline.fireChannelInactive()
        #expect(link.clientEvents.tlsErrors.map(\.code) == [.unexpectedEOF])
    }

    @Test("close(mode: .input) fails with ChannelError.operationUnsupported", arguments: allBackends)
    func closeInputUnsupported(backend: Backend) throws {
        let link = try pair((backend, backend))
        try link.activate()
        try link.exchange()
        #expect(throws: ChannelError.operationUnsupported) { try completed(link.client.close(mode: .input), "close(mode: .input)") }
        #expect(link.client.isActive)
    }

    @Test("allowRemoteHalfClosure: the peer's close_notify fires ChannelEvent.inputClosed; we still write",
          arguments: allBackends)
    func remoteHalfClosure(backend: Backend) throws {
        let link = try pair((backend, backend))
        try completed(link.client.setOption(ChannelOptions.allowRemoteHalfClosure, value: true), "setOption")
        try link.activate()
        try link.exchange()
        link.write(server: "last words")
        let serverClosed = link.server.close(mode: .output)
        try link.exchange()
        try completed(serverClosed, "the server's close(mode: .output)")
        #expect(link.clientEvents.summary == ["active", "handshakeCompleted(h2)", "read", "readComplete", "inputClosed"])
        #expect(link.clientEvents.text == "last words")
        #expect(link.client.isActive)
        // Our side may still send: the data is encrypted and leaves.
        let before = link.clientWire.count
        link.write(client: "reply")
        try link.exchange()
        #expect(recordTypes(Array(link.clientWire[before...])) == [23])
    }

    @Test("small writes flushed together share a record; a large one is sealed on its own", arguments: allBackends)
    func smallWritesShareARecord(backend: Backend) throws {
        let link = try pair((backend, backend))
        try link.activate()
        try link.exchange()
        // An HTTP head and its body in one flush: one record, every promise completed.
        var before = link.clientWire.count
        let head = link.client.write(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"))
        let body = link.client.write(ByteBuffer(string: "hello"))
        link.client.flush()
        try link.exchange()
        try completed(head, "the first write")
        try completed(body, "the second write")
        #expect(recordTypes(Array(link.clientWire[before...])) == [23])
        #expect(link.serverEvents.text == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        // A small write before a large one: two records, the large one never copied.
        before = link.clientWire.count
        link.client.write(ByteBuffer(string: "prefix"), promise: nil)
        link.client.write(ByteBuffer(repeating: 0x41, count: 8_192), promise: nil)
        link.client.flush()
        try link.exchange()
        #expect(recordTypes(Array(link.clientWire[before...])) == [23, 23])
        #expect(link.serverEvents.received.count == 43 + 6 + 8_192)
    }

    @Test("close(mode: .output) sends close_notify and closes output", arguments: allBackends)
    func closeOutput(backend: Backend) throws {
        // One AEAD suite, so that the protected record's size is known.
        let suite = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        let link = try pair((backend, backend), version: .tls12, client: {
            $0.cipherSuites = [suite]; $0.maximumTLSVersion = .tls12
        })
        try link.activate()
        try link.exchange()
        #expect(link.clientHandler.cipherSuite == suite)
        try completed(link.client.close(mode: .output), "close(mode: .output)")
        // After the handshake a TLS 1.2 close_notify (level 1, description 0) is protected:
        // one alert record (type 21, version 3.3) of 8 bytes of explicit nonce, the 2
        // encrypted bytes and the 16-byte GCM tag.
        let alert = try #require(try link.client.readOutbound(as: ByteBuffer.self))
        #expect(Array(alert.readableBytesView.prefix(5)) == [21, 3, 3, 0, 26])
        #expect(alert.readableBytes == 5 + 26)
        #expect(try link.client.readOutbound(as: ByteBuffer.self) == nil)
        // What it says, read by the peer: close_notify, which the server (no half-closure)
        // answers with its own before closing — no error, no alert.
        try link.server.writeInbound(alert)
        #expect(link.serverEvents.summary == ["active", "handshakeCompleted(h2)", "shutdownCompleted", "inactive"])
        #expect(link.serverEvents.errors.isEmpty, "\(link.serverEvents.errors)")
        let answer = try #require(try link.server.readOutbound(as: ByteBuffer.self))
        #expect(Array(answer.readableBytesView.prefix(5)) == [21, 3, 3, 0, 26])
        // (EmbeddedChannel closes entirely on close(mode: .output); the real half-close,
        // with the peer still writing, is in the socket tests.)
        #expect(throws: ChannelError.ioOnClosedChannel) { try completed(link.client.writeAndFlush(ByteBuffer(string: "x")), "a write after close") }
    }

    @Test("an empty write succeeds, alone and between others, sends nothing and spoils nothing",
          arguments: allBackends, versions)
    func emptyWrite(backend: Backend, version: TLSVersion) throws {
        let link = try pair((backend, backend), version: version)
        // Before the handshake: buffered with the rest, sent in order once it completes.
        let early = [link.client.write(ByteBuffer(string: "early,")), link.client.write(ByteBuffer())]
        link.client.flush()
        try link.activate()
        try link.exchange()
        for (index, future) in early.enumerated() { try completed(future, "early write \(index)") }

        // Alone: the promise succeeds and no record leaves (TLSConnection.write returns 0
        // for an empty buffer, which is not a failure).
        let before = link.clientWire.count
        let alone = link.client.writeAndFlush(ByteBuffer())
        try link.exchange()
        try completed(alone, "the lone empty write")
        #expect(link.clientWire[before...].map(\.readableBytes).reduce(0, +) == 0)

        // Between non-empty writes, in one flush and then in flushes of their own.
        let batch = [ByteBuffer(string: "before,"), ByteBuffer(), ByteBuffer(string: "after")].map {
            link.client.write($0)
        }
        link.client.flush()
        try link.exchange()
        for (index, future) in batch.enumerated() { try completed(future, "write \(index) of one flush") }
        let separate = [ByteBuffer(string: ";one"), ByteBuffer(), ByteBuffer(string: ";two")].map {
            link.client.writeAndFlush($0)
        }
        try link.exchange()
        for (index, future) in separate.enumerated() { try completed(future, "write \(index) flushed alone") }

        // The connection still works both ways.
        link.write(server: "reply")
        try link.exchange()
        #expect(link.serverEvents.text == "early,before,after;one;two")
        #expect(link.clientEvents.text == "reply")
        #expect(link.clientEvents.errors.isEmpty, "\(link.clientEvents.errors)")
        #expect(link.serverEvents.errors.isEmpty, "\(link.serverEvents.errors)")
        #expect(link.client.isActive)
        #expect(link.server.isActive)
        #expect(link.clientEvents.summary == ["active", "handshakeCompleted(h2)", "read", "readComplete"])
    }

    @Test("a 4 MiB write arrives whole and in order", arguments: backendPairs.map { ($0.0, $0.1) })
    func bigWrite(backends: (Backend, Backend)) throws {
        let link = try pair(backends)
        try link.activate()
        try link.exchange()
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
        let written = link.client.writeAndFlush(ByteBuffer(bytes: payload))
        try link.exchange()
        try completed(written, "the write")
        #expect(link.serverEvents.received.count == payload.count)
        #expect(link.serverEvents.received == payload)
    }

    @Test("a bad server host name fails at construction", arguments: allBackends)
    func badServerHostname(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let error = #expect(throws: TLSError.self) {
            _ = try TLSKitClientHandler(context: fixture.clientContext(), serverHostname: "bad name\n")
        }
        #expect(error?.code == .invalidConfiguration)
    }
}
#endif
