import Foundation
import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

/// API misuse gets a TLSError, never a crash: the rows not covered by the handshake and
/// data contract suites.
struct MisuseTests {
    func transportTwice(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        let error = #expect(throws: TLSError.self) { try link.server.setTransport(.memory(TLSMemoryPair())) }
        #expect(error?.code == .invalidState)
        #expect(error?.backend == backend.id)
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none))
        #expect(server.last == Step(1, .none))
        let after = #expect(throws: TLSError.self) { try link.client.setTransport(.socket(-1)) }
        #expect(after?.code == .invalidState)
        // The connection still uses the first transport.
        #expect(link.client.step { $0.write([7]) } == Step(1, .none))
        #expect(link.clientWire.pendingOutgoing > 0)
    }

    func afterTransportFailure(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let link = try MemoryLink(fixture)
        try #require(link.handshake().client.last == Step(1, .none))
        // Replace the server's incoming side by a failing read: a custom transport.
        final class FailsAfter: TLSCustomTransport {
            let wire: TLSMemoryPair
            var failing = false
            var calls = 0
            init(_ wire: TLSMemoryPair) { self.wire = wire }
            func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
                calls += 1
                return failing ? .failed(errno: ECONNRESET) : wire.read(into: buffer)
            }
            func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
                calls += 1
                return failing ? .failed(errno: ECONNRESET) : wire.write(bytes)
            }
        }
        let wire = TLSMemoryPair(), peerWire = TLSMemoryPair()
        let transport = FailsAfter(wire)
        let client = try fixture.clientContext().makeConnection()
        let server = try fixture.serverContext().makeConnection()
        try client.setTransport(.custom(transport))
        try server.setTransport(.memory(peerWire))
        var done = (false, false)
        for _ in 0..<50 where !(done.0 && done.1) {
            if !done.0 { done.0 = client.connect() == 1 }
            TLSMemoryPair.exchange(wire, peerWire)
            if !done.1 { done.1 = server.accept() == 1 }
            TLSMemoryPair.exchange(wire, peerWire)
        }
        try #require(done.0 && done.1)
        transport.failing = true
        #expect(client.readStep().0 == Step(-1, .syscall))
        let first = client.lastError
        #expect(first?.code == .transportFailure)
        #expect(first?.errno == ECONNRESET)
        let calls = transport.calls
        #expect(client.step { $0.write([1, 2]) } == Step(-1, .syscall))
        #expect(client.step { $0.shutdown() } == Step(-1, .syscall))
        #expect(client.step { $0.doHandshake() } == Step(-1, .syscall))
        #expect(client.readStep().0 == Step(-1, .syscall))
        #expect(identical(client.lastError, first))
        #expect(transport.calls == calls)
    }

    func readAfterShutdown(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend))
        try #require(link.handshake().server.last == Step(1, .none))
        link.exchange()
        _ = link.client.readStep()
        #expect(link.client.step { $0.shutdown() } == Step(0, .none))
        #expect(link.client.step { $0.shutdown() } == Step(-1, .wantRead))
        link.exchange()
        #expect(link.server.readStep().0 == Step(0, .zeroReturn))
        #expect(link.server.step { $0.write(Array("late".utf8)) } == Step(4, .none))
        #expect(link.server.step { $0.shutdown() } == Step(1, .none))
        link.exchange()
        let (step, bytes) = link.client.readStep()
        #expect(step == Step(4, .none))
        #expect(bytes == Array("late".utf8))
        #expect(link.client.readStep().0 == Step(0, .zeroReturn))
        #expect(link.client.step { $0.shutdown() } == Step(1, .none))
        #expect(link.client.step { $0.write([1]) } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alreadyShutDown)
    }

    func invalidDescriptor(backend: Backend) throws {
        let fixture = try Fixture(backend)
        for (connection, call) in [(try fixture.clientContext().makeConnection(), { (c: TLSConnection) in c.connect() }),
                                   (try fixture.serverContext().makeConnection(), { (c: TLSConnection) in c.accept() })] {
            try connection.setTransport(.socket(-1))
            #expect(connection.step(call) == Step(-1, .syscall))
            #expect(connection.lastError?.code == .transportFailure)
            #expect(connection.lastError?.errno == EBADF)
            #expect(connection.step(call) == Step(-1, .syscall))
            #expect(connection.lastError?.errno == EBADF)
        }
    }

    func closedDescriptorServer(backend: Backend) throws {
        let server = try Fixture(backend).serverContext().makeConnection()
        try server.setTransport(.socket(try makeClosedDescriptor()))
        #expect(server.step { $0.accept() } == Step(-1, .syscall))
        #expect(server.lastError?.errno == EBADF)
    }

    func regularFile(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("transport").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let client = try fixture.clientContext().makeConnection()
        try client.setTransport(.socket(fd))
        #expect(client.step { $0.connect() } == Step(-1, .ssl))
        #expect(client.lastError?.code == .unexpectedEOF)
        var status = stat()
        fstat(fd, &status)
        #expect(status.st_size > 0)  // the ClientHello went into the file

        let readOnly = open(path, O_RDONLY | O_CLOEXEC)
        try #require(readOnly >= 0)
        defer { close(readOnly) }
        // A server reading a file of garbage-free TLS bytes (our ClientHello) then EOF.
        let server = try fixture.serverContext().makeConnection()
        try server.setTransport(.socket(readOnly))
        let step = server.step { $0.accept() }
        // It reads the ClientHello, answers (write on a read-only descriptor: EBADF).
        #expect(step == Step(-1, .syscall))
        #expect(server.lastError?.errno == EBADF)
    }

    func pipes(backend: Backend) throws {
        let fixture = try Fixture(backend)
        var ends: [Int32] = [0, 0]
        try #require(closeOnExecPipe(&ends) == 0)
        let client = try fixture.clientContext().makeConnection()
        try client.setTransport(.socket(ends[0]))
        #expect(client.step { $0.connect() } == Step(-1, .syscall))
        #expect(client.lastError?.errno == EBADF)
        close(ends[1])
        let server = try fixture.serverContext().makeConnection()
        try server.setTransport(.socket(ends[0]))
        #expect(server.step { $0.accept() } == Step(-1, .ssl))
        #expect(server.lastError?.code == .unexpectedEOF)
        close(ends[0])
    }

    func failedContextLeaksNothing(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let badCertificate = TLSConfiguration.makeServerConfiguration(
            certificateChain: .pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            privateKey: .pem(fixture.identity.privateKeyPEM))
        let badKey = TLSConfiguration.makeServerConfiguration(
            certificateChain: .pem(fixture.identity.certificateChainPEM), privateKey: .bytes([0x30, 0x03, 1, 2, 3]))
        var missingRoots = fixture.clientConfiguration
        missingRoots.trustRoots = .caFile("/nonexistent/tlskit-roots.pem")
        let cases: [(TLSConfiguration, TLSError.Code)] = [
            (badCertificate, .badCertificate), (badKey, .badPrivateKey), (missingRoots, .badCertificate),
        ]
        // Parallel tests open descriptors too: a leak here would be ≥ 64 per case. (64, not
        // more: each OpenSSL context costs ~0.15 s under the sanitizers.) A leak grows on
        // every round; another test's descriptors come and go: three rounds, one must stay flat.
        var growth: [Int] = []
        for _ in 0..<3 {
            let before = try openDescriptors()
            for (configuration, code) in cases {
                for _ in 0..<64 {
                    let error = #expect(throws: TLSError.self) { try backend.type.makeContext(configuration) }
                    #expect(error?.code == code)
                }
            }
            growth.append(try openDescriptors() - before)
            if growth.last! < 32 { break }
        }
        #expect(growth.contains { $0 < 32 }, "descriptors gained per round: \(growth)")
    }
}

extension MisuseTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = [
        ConformanceRule("misuse.transportTwice", "a second transport, before and after the handshake: throws invalidState, the first one stays") { try MisuseTests().transportTwice(backend: $0) },
        ConformanceRule("misuse.afterTransportFailure", "every call after a transport failure: -1 .syscall with the first errno, the transport untouched") { try MisuseTests().afterTransportFailure(backend: $0) },
        ConformanceRule("misuse.readAfterShutdown", "read after our own shutdown: the peer's data still arrives (half-close), then 0 .zeroReturn") { try MisuseTests().readAfterShutdown(backend: $0) },
        ConformanceRule("misuse.invalidDescriptor", "descriptor -1: -1 .syscall EBADF on both roles, sticky") { try MisuseTests().invalidDescriptor(backend: $0) },
        ConformanceRule("misuse.closedDescriptorServer", "a closed descriptor on the server role: -1 .syscall EBADF") { try MisuseTests().closedDescriptorServer(backend: $0) },
        ConformanceRule("misuse.regularFile", "a regular file as the transport: the client writes its hello, then -1 .ssl unexpectedEOF; the server -1 .ssl unexpectedEOF") { try MisuseTests().regularFile(backend: $0) },
        ConformanceRule("misuse.pipes", "pipes: the read end for a client gives -1 .syscall EBADF; a closed pipe for a server -1 .ssl unexpectedEOF") { try MisuseTests().pipes(backend: $0) },
        ConformanceRule("misuse.failedContextLeaksNothing", "a configuration that fails to load: the same TLSError every time, and no descriptor leaks") { try MisuseTests().failedContextLeaksNothing(backend: $0) },
    ]
}
