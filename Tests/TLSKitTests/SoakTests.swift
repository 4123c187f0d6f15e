import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// Load and leaks: many connections against an in-process server on loopback, with open
/// descriptors and resident memory measured before and after.
///
/// Counts come from the environment (CI-sized defaults):
/// `TLSKIT_SOAK_SEQUENTIAL` (default 300) sequential connections, and
/// `TLSKIT_SOAK_CONCURRENT` (default 100) connections made by `TLSKIT_SOAK_THREADS`
/// (default 10) client threads at once against as many server threads.
/// The figures of a long run are in Docs/robustness.md.
@Suite("Soak", .serialized, .timeLimit(.minutes(10)), .measuresProcess)
struct SoakTests {
    static func count(_ name: String, _ fallback: Int) -> Int {
        getenv(name).flatMap { Int(String(cString: $0)) }.map { max(1, $0) } ?? fallback
    }

    static let sequential = count("TLSKIT_SOAK_SEQUENTIAL", 300)
    static let concurrent = count("TLSKIT_SOAK_CONCURRENT", 100)
    static let threads = count("TLSKIT_SOAK_THREADS", 10)

    /// One echo exchange and a clean shutdown on an accepted connection.
    static func serve(_ listener: TLSListener, _ context: TLSContext) throws {
        let socket = try listener.accept(context: context, timeout: .seconds(30))
        defer { socket.close() }
        let request = try socket.read()
        try socket.write(request)
        try socket.shutdown(waitForPeer: true)
    }

    /// One client connection: handshake, echo, shutdown; returns true when the echo matched
    /// and the server's close_notify arrived.
    static func connect(_ port: UInt16, _ context: TLSContext, _ index: Int) throws -> Bool {
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: context,
                                           serverName: "localhost", timeout: .seconds(30))
        defer { socket.close() }
        let message = Array("soak \(index)".utf8)
        try socket.write(message)
        var reply: [UInt8] = []
        for _ in 0..<100 where reply.count < message.count {
            let chunk = try socket.read()
            if chunk.isEmpty { break }
            reply += chunk
        }
        // The server's close_notify: checked here and returned, since an #expect on a
        // plain thread may not be attributed to the test.
        let closed = try socket.read() == []
        try socket.shutdown()
        return reply == message && closed
    }

    /// Runs `connections` connections over `threads` client/server thread pairs.
    static func load(connections: Int, threads: Int, listener: TLSListener,
                     server: TLSContext, client: TLSContext) throws -> Int {
        let perThread = (0..<threads).map { connections / threads + ($0 < connections % threads ? 1 : 0) }
        let servers = perThread.map { n in
            Background { () -> Int in
                for _ in 0..<n { try serve(listener, server) }
                return n
            }
        }
        let clients = perThread.enumerated().map { thread, n in
            Background { () -> Int in
                var good = 0
                for i in 0..<n where try connect(listener.port, client, thread * 100_000 + i) { good += 1 }
                return good
            }
        }
        let good = try clients.reduce(0) { $0 + (try $1.join(timeout: 600)) }
        let served = try servers.reduce(0) { $0 + (try $1.join(timeout: 600)) }
        #expect(served == connections)
        return good
    }

    @Test("sequential then concurrent connections on loopback: every echo right, no descriptor or memory growth",
          arguments: allBackends)
    func soak(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let server = try fixture.serverContext(), client = try fixture.clientContext()
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        // Warm up (allocator arenas, library caches), then measure.
        #expect(try Self.load(connections: 20, threads: 1, listener: listener, server: server, client: client) == 20)
        let descriptorsBefore = try openDescriptors()
        let memoryBefore = try residentBytes()

        #expect(try Self.load(connections: Self.sequential, threads: 1, listener: listener,
                              server: server, client: client) == Self.sequential)
        #expect(try Self.load(connections: Self.concurrent, threads: Self.threads, listener: listener,
                              server: server, client: client) == Self.concurrent)

        let descriptorsAfter = try openDescriptors()
        let memoryAfter = try residentBytes()
        let total = Self.sequential + Self.concurrent
        print("soak \(backend.name): \(total) connections; descriptors \(descriptorsBefore) -> \(descriptorsAfter); "
              + "resident \(memoryBefore >> 10) KiB -> \(memoryAfter >> 10) KiB")
        // Other suites run in parallel in this process and open descriptors of their own:
        // the bound is far below one leaked descriptor per connection.
        #expect(descriptorsAfter <= descriptorsBefore + 32,
                "descriptors \(descriptorsBefore) -> \(descriptorsAfter) after \(total) connections")
        // Resident memory: 64 MiB of slack for the parallel suites and allocator caching;
        // a leak of one connection's state (tens of KiB) each time shows well above it
        // at the long-run counts, and AddressSanitizer/valgrind check exact leaks.
        #expect(memoryAfter - memoryBefore < 64 << 20,
                "resident memory grew by \((memoryAfter - memoryBefore) >> 10) KiB over \(total) connections")
    }
}
