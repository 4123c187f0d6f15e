// bench-tlskit: the benchmark scenarios through TLSKit, on the OpenSSL or the GnuTLS
// backend (`--backend openssl|gnutls`). The same work as bench-c-openssl and
// bench-c-gnutls do directly over the C libraries: contexts made once, a new
// connection pair per handshake, chain and host-name verification, SNI.
//
//   bench-tlskit handshake --backend B --transport memory|tcp --key ecdsa|rsa --count N --certs DIR
//   bench-tlskit resume    --backend B --count N --certs DIR [--groups x25519]
//   bench-tlskit bulk      --backend B --transport memory|tcp --mib M --certs DIR [--cipher aes128]
//   bench-tlskit idle      --backend B --count N --certs DIR
//   bench-tlskit latency   --backend B --count N --connections K --certs DIR [--nodelay 0]
import BenchSupport
import BenchTLSKit
import Foundation
import TLSKit

let arguments = BenchArguments()
let backend = tlsKitBackend(arguments)
let maxSteps = 100_000
let chunkSize = 16_384

/// Contexts with TLSKit's defaults (see BenchTLSKit).
func makeContexts() -> (client: TLSContext, server: TLSContext) { makeTLSKitContexts(arguments, backend: backend) }

/// One client/server pair and what carries its bytes.
final class Pair {
    let client: TLSConnection
    let server: TLSConnection
    let clientWire: TLSMemoryPair?
    let serverWire: TLSMemoryPair?
    let descriptors: (Int32, Int32)?

    init(_ contexts: (client: TLSContext, server: TLSContext), memory: Bool, listener: Int32, port: Int32) {
        client = contexts.client.makeConnection()
        server = contexts.server.makeConnection()
        do {
            if memory {
                let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
                try client.setTransport(.memory(clientWire))
                try server.setTransport(.memory(serverWire))
                self.clientWire = clientWire
                self.serverWire = serverWire
                descriptors = nil
            } else {
                var c: Int32 = -1, s: Int32 = -1
                guard bench_tcp_pair(listener, port, &c, &s) == 0 else { benchFail("loopback connection") }
                try client.setTransport(.socket(c))
                try server.setTransport(.socket(s))
                clientWire = nil
                serverWire = nil
                descriptors = (c, s)
            }
        } catch {
            benchFail("transport: \(error)")
        }
    }

    deinit {
        // The connections go first (their deinit frees the C sessions), then the sockets.
        if let descriptors {
            bench_close(descriptors.0)
            bench_close(descriptors.1)
        }
    }

    func exchange() {
        if let clientWire, let serverWire { TLSMemoryPair.exchange(clientWire, serverWire) }
    }

    private static func done(_ connection: TLSConnection, _ result: Int32) -> Bool {
        if result == 1 { return true }
        switch connection.error(for: result) {
        case .wantRead, .wantWrite: return false
        default: benchFail("handshake: \(connection.lastError.map { "\($0)" } ?? "result \(result)")")
        }
    }

    /// Both handshakes in this thread, as the C programs drive theirs.
    func handshake() {
        var clientDone = false, serverDone = false
        for _ in 0..<maxSteps {
            if !clientDone { clientDone = Self.done(client, client.connect()) }
            exchange()
            if !serverDone { serverDone = Self.done(server, server.accept()) }
            exchange()
            if clientDone && serverDone { return }
        }
        benchFail("the handshake did not finish")
    }

    /// A handshake that looks at the server's first flight on the wire to name the
    /// key-exchange group (TLSKit has no API for it). In memory only.
    func handshakeReadingGroup() -> String {
        guard let clientWire, let serverWire else { return "unknown" }
        _ = client.connect()
        serverWire.deliverIncoming(clientWire.takeOutgoing())
        _ = server.accept()
        let flight = serverWire.takeOutgoing()
        clientWire.deliverIncoming(flight)
        handshake()
        return keyShareGroup(inServerFlight: flight)
    }
}

func negotiated(_ connection: TLSConnection, group: String?) -> [(String, String)] {
    var fields: [(String, String)] = []
    if let group { fields.append(("group", group)) }
    fields.append(("cipher", connection.cipherSuite ?? "unknown"))
    fields.append(("version", connection.negotiatedVersion.map { "\($0)" } ?? "unknown"))
    return fields
}

func handshakes() {
    let contexts = makeContexts()
    let memory = arguments.inMemory
    let count = arguments.int("count", default: 1000)
    var port: Int32 = 0
    let listener = memory ? -1 : bench_listen(&port)
    if !memory && listener < 0 { benchFail("listen") }
    defer { if listener >= 0 { bench_close(listener) } }

    let probe = Pair(contexts, memory: true, listener: -1, port: 0)
    let group = probe.handshakeReadingGroup()
    var fields = negotiated(probe.client, group: group)
    for _ in 0..<(count / 10 + 1) {
        Pair(contexts, memory: memory, listener: listener, port: port).handshake()
    }
    let allocations = allocationCount()
    let start = benchNow()
    for _ in 0..<count {
        Pair(contexts, memory: memory, listener: listener, port: port).handshake()
    }
    let elapsed = benchNow() - start
    if let perOperation = allocationsPerOperation(allocations, allocationCount(), operations: count) {
        fields.append(perOperation)
    }
    report(result: formatted(Double(count) / elapsed), unit: "handshakes/s", fields)
}

/// Resumption with a TLS 1.3 ticket, in memory: one full handshake, the client reads
/// once (processing the server's NewSessionTicket), then every handshake offers that
/// session (`setSession`).
func resumptions() {
    let contexts = makeContexts()
    let count = arguments.int("count", default: 1000)
    let first = Pair(contexts, memory: true, listener: -1, port: 0)
    first.handshake()
    first.exchange()
    var byte: [UInt8] = [0]
    _ = first.client.read(into: &byte)
    guard let session = first.client.session else { benchFail("no session after the first handshake") }
    func resumed() -> Pair {
        let pair = Pair(contexts, memory: true, listener: -1, port: 0)
        do { try pair.client.setSession(session) } catch { benchFail("setSession: \(error)") }
        pair.handshake()
        guard pair.client.isSessionReused else { benchFail("a handshake was not resumed") }
        return pair
    }
    for _ in 0..<(count / 10 + 1) { _ = resumed() }
    let allocations = allocationCount()
    let start = benchNow()
    var last: Pair?
    for _ in 0..<count { last = resumed() }
    let elapsed = benchNow() - start
    var fields: [(String, String)] = []
    if let last {
        fields = negotiated(last.client, group: (try? last.client.negotiatedGroup).map { "\($0)" })
    }
    if let perOperation = allocationsPerOperation(allocations, allocationCount(), operations: count) {
        fields.append(perOperation)
    }
    fields.append(("resumed", String(count)))
    report(result: formatted(Double(count) / elapsed), unit: "handshakes/s", fields)
}

func bulk() {
    let contexts = makeContexts()
    let memory = arguments.inMemory
    let mebibytes = arguments.int("mib", default: 256)
    var port: Int32 = 0
    let listener = memory ? -1 : bench_listen(&port)
    defer { if listener >= 0 { bench_close(listener) } }
    let pair = Pair(contexts, memory: memory, listener: listener, port: port)
    pair.handshake()
    let client = pair.client, server = pair.server

    let outgoing = [UInt8](repeating: 0x5A, count: chunkSize)
    var incoming = [UInt8](repeating: 0, count: chunkSize)
    let chunks = mebibytes * 1024 * 1024 / chunkSize
    let warmup = chunks / 16 + 1
    var received = 0
    var allocations: Double?
    var start = 0.0
    outgoing.withUnsafeBytes { out in
        incoming.withUnsafeMutableBytes { into in
            func drain() {
                for _ in 0..<64 {
                    let n = server.read(into: into)
                    if n <= 0 {
                        if server.error(for: n) != .wantRead { benchFail("read: \(String(describing: server.lastError))") }
                        return
                    }
                    received += Int(n)
                }
            }
            for index in 0..<(chunks + warmup) {
                if index == warmup {
                    allocations = allocationCount()
                    start = benchNow()
                }
                var step = 0
                while true {
                    step += 1
                    if step > maxSteps { benchFail("write stalled") }
                    let written = client.write(out)
                    if written == Int32(chunkSize) { break }
                    switch client.error(for: written) {
                    case .wantRead, .wantWrite: break
                    default: benchFail("write: \(String(describing: client.lastError))")
                    }
                    pair.exchange()
                    drain()
                }
                pair.exchange()
                drain()
            }
            var step = 0
            while received < (chunks + warmup) * chunkSize && step < maxSteps {
                step += 1
                pair.exchange()
                drain()
            }
        }
    }
    let elapsed = benchNow() - start
    guard received == (chunks + warmup) * chunkSize else { benchFail("bytes lost") }
    var fields = negotiated(client, group: nil)
    if let perOperation = allocationsPerOperation(allocations, allocationCount(), operations: chunks) {
        fields.append(perOperation)
    }
    report(result: formatted(Double(chunks * chunkSize) / 1e6 / elapsed), unit: "MB/s", fields)
}

func idle() {
    let contexts = makeContexts()
    let count = arguments.int("count", default: 1000)
    bench_raise_nofile()
    var port: Int32 = 0
    let listener = bench_listen(&port)
    defer { bench_close(listener) }
    for _ in 0..<8 { Pair(contexts, memory: false, listener: listener, port: port).handshake() }
    var pairs: [Pair] = []
    pairs.reserveCapacity(count)
    let rss = bench_rss_bytes(), heap = bench_heap_bytes()
    for _ in 0..<count {
        let pair = Pair(contexts, memory: false, listener: listener, port: port)
        pair.handshake()
        pairs.append(pair)
    }
    let rssAfter = bench_rss_bytes(), heapAfter = bench_heap_bytes()
    report(result: formatted(Double(rssAfter - rss) / Double(2 * count), decimals: 0), unit: "bytes/connection", [
        ("heap_per_connection", formatted(Double(heapAfter - heap) / Double(2 * count), decimals: 0)),
        ("connections", String(2 * count)),
    ])
    withExtendedLifetime(pairs) {}
}

/// Request/response latency as a user of the helpers meets it: `TLSListener` and
/// `TLSSocket` with their default socket options, one blocking thread per side, 32
/// bytes each way per round trip. `result` is the median round trip on an established
/// connection (µs), `p99` its 99th percentile, and `first` the median of the first
/// round trip on each of K fresh connections (where the session tickets are in flight).
/// `--nodelay 0` turns `TCP_NODELAY` off on both sides (Nagle's algorithm on, as on a
/// socket a C user made with the defaults).
func latency() {
    let contexts = makeContexts()
    let count = arguments.int("count", default: 2000)
    let connections = arguments.int("connections", default: 20)
    let noDelay = arguments.int("nodelay", default: 1) != 0
    let listener: TLSListener
    do { listener = try TLSListener(host: "127.0.0.1", port: 0, noDelay: noDelay) } catch { benchFail("listen: \(error)") }
    let serverContext = contexts.server
    let server = Thread {
        while true {
            guard let socket = try? listener.accept(context: serverContext) else { continue }
            while let request = try? socket.read(), !request.isEmpty {
                do { try socket.write(request) } catch { break }
            }
            socket.close()
        }
    }
    server.stackSize = 8 << 20
    server.start()
    let message = [UInt8](repeating: 0x61, count: 32)
    func roundTrip(_ socket: TLSSocket) -> Double {
        let start = benchNow()
        do {
            try socket.write(message)
            var got = 0
            while got < message.count {
                let chunk = try socket.read()
                if chunk.isEmpty { benchFail("the server closed") }
                got += chunk.count
            }
        } catch { benchFail("round trip: \(error)") }
        return (benchNow() - start) * 1e6
    }
    func connect() -> TLSSocket {
        do { return try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: contexts.client, noDelay: noDelay) }
        catch { benchFail("connect: \(error)") }
    }
    var firsts: [Double] = [], handshakes: [Double] = []
    for _ in 0..<connections {
        let start = benchNow()
        let socket = connect()
        handshakes.append((benchNow() - start) * 1e6)
        firsts.append(roundTrip(socket))
        socket.close()
    }
    let socket = connect()
    for _ in 0..<(count / 10 + 1) { _ = roundTrip(socket) }
    var times = (0..<count).map { _ in roundTrip(socket) }
    times.sort()
    firsts.sort()
    handshakes.sort()
    let version = socket.connection.negotiatedVersion.map { "\($0)" } ?? "?"
    report(result: formatted(times[(times.count - 1) / 2]), unit: "us", [
        ("p99", formatted(times[min(times.count - 1, times.count * 99 / 100)])),
        ("first", formatted(firsts[(firsts.count - 1) / 2])),
        ("connect", formatted(handshakes[(handshakes.count - 1) / 2])),
        ("version", version),
    ])
    socket.close()
}

switch arguments.scenario {
case "latency": latency()
case "handshake": handshakes()
case "bulk": bulk()
case "idle": idle()
case "info":
    print("\(OpenSSLBackend.libraryVersion); GnuTLS \(GnuTLSBackend.libraryVersion)")
case "resume": resumptions()
default:
    benchFail("usage: bench-tlskit handshake|resume|bulk|idle --backend openssl|gnutls [options]")
}
