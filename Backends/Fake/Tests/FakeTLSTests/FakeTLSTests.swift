// FakeTLS on its own: its digests, and a pair of its connections through the core's
// contract (both protocol shapes, ALPN, SNI, mutual TLS, verification, alerts).
import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore
import FakeTLS

@Suite("FakeTLS: the backend in a package of its own")
struct FakeTLSTests {
    @Test("the context's SHA-256/384/512 (tls-server-end-point, pins) match the FIPS 180-4 examples")
    func digests() throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .insecureNoVerification
        let engine = try FakeTLSBackend.makeContext(configuration).engine
        func hex(_ algorithm: TLSHashAlgorithm, _ text: String) -> String {
            engine.digest(algorithm, Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
        }
        #expect(hex(.sha256, "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(.sha384, "abc") == "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
        #expect(hex(.sha512, "abc").hasPrefix("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"))
        #expect(hex(.sha256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex(.sha256, "") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("a handshake, ALPN, SNI and data both ways, the client or the server pinned to each version",
          arguments: [TLSVersion.tls12, .tls13], [TLSRole.client, .server])
    func exchange(version: TLSVersion, pinned: TLSRole) throws {
        let identity = try Identity.make()
        var client = identity.clientConfiguration()
        var server = identity.serverConfiguration()
        if pinned == .client {
            client.minimumTLSVersion = version
            client.maximumTLSVersion = version
        } else {
            server.minimumTLSVersion = version
            server.maximumTLSVersion = version
        }
        client.applicationProtocols = ["h2", "http/1.1"]
        server.applicationProtocols = ["http/1.1", "h2"]
        let link = try Link(client: client, server: server)
        let results = link.handshake()
        #expect(results.client == 1 && results.server == 1)
        #expect(link.client.negotiatedVersion == version && link.server.negotiatedVersion == version)
        #expect(link.client.negotiatedApplicationProtocol == "http/1.1")
        #expect(link.server.requestedServerName == "localhost")
        #expect(link.client.peerCertificateChain.count == 1)
        #expect(link.client.write(Array("ping".utf8)) == 4)
        TLSMemoryPair.exchange(link.clientWire, link.serverWire)
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(link.server.read(into: &buffer) == 4 && Array(buffer.prefix(4)) == Array("ping".utf8))
        #expect(link.server.shutdown() == 0)
        TLSMemoryPair.exchange(link.clientWire, link.serverWire)
        let result = link.client.read(into: &buffer)
        #expect(result == 0 && link.client.error(for: result) == .zeroReturn)
    }

    @Test("an untrusted server: certificateVerificationFailed [unknownIssuer], the server receives unknown_ca")
    func untrusted() throws {
        let identity = try Identity.make(), other = try Identity.make()
        let link = try Link(client: other.clientConfiguration(), server: identity.serverConfiguration())
        let results = link.handshake()
        #expect(results.client == -1 && link.client.error(for: results.client) == .ssl)
        #expect(link.client.lastError?.code == .certificateVerificationFailed)
        #expect(link.client.lastError?.verificationFailure == .unknownIssuer)
        #expect(link.client.lastError?.backend == FakeTLSBackend.id)
        #expect(results.server == -1 && link.server.lastError?.code == .alertReceived)
        #expect(link.server.lastError?.alert == .unknownCA)
    }

    @Test("a name the certificate does not carry: hostnameMismatch, from the core's rule")
    func hostname() throws {
        let identity = try Identity.make()
        let link = try Link(client: identity.clientConfiguration(), server: identity.serverConfiguration(), serverName: "other.test")
        let results = link.handshake()
        #expect(results.client == -1 && link.client.lastError?.verificationFailure == .hostnameMismatch)
        #expect(link.server.lastError?.alert == .badCertificate)
    }

    @Test("mutual TLS: the client's certificate is required and checked; without one, the version's alert",
          arguments: [false, true], [TLSVersion.tls12, .tls13])
    func mutual(clientHasCertificate: Bool, version: TLSVersion) throws {
        let serverIdentity = try Identity.make(), clientIdentity = try Identity.make(commonName: "client", names: "DNS:client")
        var server = serverIdentity.serverConfiguration()
        server.clientAuthentication = .required
        server.trustRoots = .certificates([.pem(clientIdentity.certificatePEM)])
        var client = serverIdentity.clientConfiguration()
        client.maximumTLSVersion = version
        if clientHasCertificate {
            client.certificateChain = .pem(clientIdentity.certificatePEM)
            client.privateKey = .pem(clientIdentity.keyPEM)
        }
        let link = try Link(client: client, server: server)
        let results = link.handshake()
        if clientHasCertificate {
            #expect(results.server == 1 && link.server.peerCertificateChain.count == 1)
        } else {
            #expect(results.server == -1 && link.server.lastError?.verificationFailure == .noCertificate)
            // TLS 1.2 has no certificate_required (RFC 5246 §7.4.6): handshake_failure.
            let expected: TLSAlert = version == .tls13 ? .certificateRequired : .handshakeFailure
            #expect(link.server.lastError?.alert == expected)
            // In TLS 1.3 the client finished first and reads the server's alert next; in
            // TLS 1.2 it was still waiting for the server's Finished.
            var buffer = [UInt8](repeating: 0, count: 16)
            let step = version == .tls13 ? link.client.read(into: &buffer) : results.client
            #expect(step == -1)
            #expect(link.client.lastError?.code == .alertReceived && link.client.lastError?.alert == expected)
        }
    }

    @Test("no ALPN protocol in common: protocolFailure and no_application_protocol")
    func noCommonProtocol() throws {
        let identity = try Identity.make()
        var client = identity.clientConfiguration()
        client.applicationProtocols = ["h2"]
        var server = identity.serverConfiguration()
        server.applicationProtocols = ["http/1.1"]
        let link = try Link(client: client, server: server)
        let results = link.handshake()
        #expect(results.server == -1 && link.server.lastError?.code == .protocolFailure)
        #expect(link.client.lastError?.alert == .noApplicationProtocol)
    }

    @Test("a flipped byte in a protected record's tag is bad_record_mac", arguments: [TLSVersion.tls12, .tls13])
    func tampered(version: TLSVersion) throws {
        let identity = try Identity.make()
        var client = identity.clientConfiguration()
        client.maximumTLSVersion = version
        let link = try Link(client: client, server: identity.serverConfiguration())
        #expect(link.handshake() == (1, 1))
        #expect(link.client.write(Array("data".utf8)) == 4)
        var record = link.clientWire.takeOutgoing()
        record[record.count - 1] ^= 1
        link.serverWire.deliverIncoming(record)
        var buffer = [UInt8](repeating: 0, count: 64)
        let result = link.server.read(into: &buffer)
        #expect(result == -1 && link.server.lastError?.code == .protocolFailure)
        #expect(link.server.lastError?.alert == .badRecordMAC)
    }

    @Test("options FakeTLS cannot honour are refused at context creation, naming the backend")
    func refusals() throws {
        var configuration = TLSConfiguration.makeClientConfiguration()  // trustRoots .system
        #expect(throws: TLSError(.unsupported, "", backend: "")) { try FakeTLSBackend.makeContext(configuration) }
        configuration.certificateVerification = .insecureNoVerification
        #expect(throws: Never.self) { try FakeTLSBackend.makeContext(configuration) }
        configuration.keyLogger = TLSKeyLogger { _ in }
        do {
            _ = try FakeTLSBackend.makeContext(configuration)
            Issue.record("keyLogger was accepted")
        } catch let error as TLSError {
            #expect(error.code == .unsupported && error.backend == FakeTLSBackend.id)
        }
    }
}
