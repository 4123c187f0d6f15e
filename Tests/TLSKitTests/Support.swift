import Foundation
import Testing
import TLSKit
@_exported import TLSKitTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One backend as a test argument, named in the test report.
struct Backend: CustomTestStringConvertible, Sendable {
    let type: any TLSBackend.Type
    var id: TLSBackendID { type.id }
    var name: String { type.id.name }
    var testDescription: String { type.id.name }
}

/// Every backend compiled into this build: the suite runs once per backend.
let allBackends: [Backend] = TLSBuiltInBackends.available.map { Backend(type: $0) }

/// A result and its `error(for:)` code: what every contract assertion compares.
struct Step: Equatable, CustomStringConvertible {
    var result: Int32
    var code: TLSResultCode
    init(_ result: Int32, _ code: TLSResultCode) {
        self.result = result
        self.code = code
    }
    var description: String { "(\(result), .\(code))" }
}

extension TLSConnection {
    /// Runs one call and pairs its result with `error(for:)`.
    func step(_ call: (TLSConnection) -> Int32) -> Step {
        let result = call(self)
        return Step(result, error(for: result))
    }

    /// Reads into a fresh buffer; returns the step and the bytes read.
    func readStep(maxBytes: Int = 65_536) -> (Step, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let result = read(into: &buffer)
        return (Step(result, error(for: result)), result > 0 ? Array(buffer[0..<Int(result)]) : [])
    }
}

/// A real TLS peer or tool run by the tests.
typealias Peer = Child

/// Certificates and contexts for one backend, generated at run time.
struct Fixture {
    let backend: any TLSBackend.Type
    let identity: TLSIdentity

    init(_ backend: Backend, names: [String] = ["localhost", "127.0.0.1", "::1"]) throws {
        self.backend = backend.type
        identity = try backend.type.makeSelfSignedIdentity(
            commonName: "localhost", subjectAlternativeNames: names, validityDays: 2)
    }

    var serverConfiguration: TLSConfiguration { .makeServerConfiguration(identity: identity) }

    /// A client that trusts exactly this fixture's certificate and expects `localhost`.
    var clientConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        configuration.serverName = "localhost"
        return configuration
    }

    func serverContext(_ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        var configuration = serverConfiguration
        change(&configuration)
        return try backend.makeContext(configuration)
    }

    func clientContext(_ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        var configuration = clientConfiguration
        change(&configuration)
        return try backend.makeContext(configuration)
    }
}

/// A client and a server connected by two in-memory pairs; the test moves the bytes.
final class MemoryLink {
    let client: TLSConnection
    let server: TLSConnection
    let clientWire: TLSMemoryPair
    let serverWire: TLSMemoryPair

    init(client clientContext: TLSContext, server serverContext: TLSContext, capacity: Int = 1 << 20) throws {
        client = clientContext.makeConnection()
        server = serverContext.makeConnection()
        clientWire = TLSMemoryPair(capacity: capacity)
        serverWire = TLSMemoryPair(capacity: capacity)
        try client.setTransport(.memory(clientWire))
        try server.setTransport(.memory(serverWire))
        try client.setConnectState()
        try server.setAcceptState()
    }

    convenience init(_ fixture: Fixture, capacity: Int = 1 << 20,
                     client: (inout TLSConfiguration) -> Void = { _ in },
                     server: (inout TLSConfiguration) -> Void = { _ in }) throws {
        try self.init(client: fixture.clientContext(client), server: fixture.serverContext(server), capacity: capacity)
    }

    /// When true, ``clientSent`` keeps every byte the client sent (off by default: soak
    /// runs move megabytes through a link).
    var recordsClientBytes = false
    /// Every byte the client sent through ``exchange()``, in order, while ``recordsClientBytes``.
    private(set) var clientSent: [UInt8] = []

    @discardableResult
    func exchange() -> Int {
        guard recordsClientBytes else { return TLSMemoryPair.exchange(clientWire, serverWire) }
        let fromClient = clientWire.takeOutgoing()
        clientSent += fromClient
        serverWire.deliverIncoming(fromClient)
        let fromServer = serverWire.takeOutgoing()
        clientWire.deliverIncoming(fromServer)
        return fromClient.count + fromServer.count
    }

    /// The records in ``clientSent``: content type and body (a partial last record is left out).
    var clientRecords: [(type: UInt8, body: [UInt8])] {
        var records: [(type: UInt8, body: [UInt8])] = []
        var index = 0
        while index + 5 <= clientSent.count {
            let length = Int(clientSent[index + 3]) << 8 | Int(clientSent[index + 4])
            guard index + 5 + length <= clientSent.count else { break }
            records.append((clientSent[index], Array(clientSent[index + 5 ..< index + 5 + length])))
            index += 5 + length
        }
        return records
    }

    /// Drives both handshakes, moving bytes between calls, until both finish or one
    /// fails. Returns every step of each side in order.
    @discardableResult
    func handshake(maxRounds: Int = 100) -> (client: [Step], server: [Step]) {
        var clientSteps: [Step] = [], serverSteps: [Step] = []
        for _ in 0..<maxRounds {
            let clientDone = clientSteps.last.map { $0.result >= 0 || ($0.code != .wantRead && $0.code != .wantWrite) } ?? false
            let serverDone = serverSteps.last.map { $0.result >= 0 || ($0.code != .wantRead && $0.code != .wantWrite) } ?? false
            if clientDone && serverDone { break }
            if !clientDone { clientSteps.append(client.step { $0.doHandshake() }) }
            exchange()
            if !serverDone { serverSteps.append(server.step { $0.doHandshake() }) }
            exchange()
        }
        return (clientSteps, serverSteps)
    }
}

/// Runs `body` on a new thread; `join()` returns its result.
final class Background<Value: Sendable>: Sendable {
    private let outcome = Locked<Result<Value, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [outcome, done] in
            let result = Result { try body() }
            outcome.withLock { $0 = result }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    func join(timeout: TimeInterval = 60) throws -> Value {
        guard done.wait(timeout: .now() + timeout) == .success else {
            throw TLSError(.timedOut, "background thread did not finish in \(timeout) s", backend: "tests")
        }
        return try outcome.withLock { $0! }.get()
    }
}

/// A connected pair of UNIX stream sockets.
func socketPair(nonBlocking: Bool = false) throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
        throw TLSError(.transportFailure, "socketpair failed", backend: "tests", errno: errno)
    }
    return (fds[0], fds[1])
}

/// A descriptor number that was open and is now closed, chosen near the top of the
/// descriptor table: descriptors are allocated lowest-first, so tests running in
/// parallel do not reuse it (a just-closed low number would be reused at once), and
/// every call gets a number of its own, so two tests never share one.
func makeClosedDescriptor() throws -> Int32 {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    let top = Int32(clamping: min(limit.rlim_cur, 65_536)) - 1
    let offset = closedDescriptorCounter.withLock { value -> Int32 in
        defer { value = (value + 1) % 256 }
        return value
    }
    let (a, b) = try socketPair()
    defer { close(a); close(b) }
    let high = top - offset
    guard dup2(a, high) == high else {
        throw TLSError(.transportFailure, "dup2 to \(high) failed", backend: "tests", errno: errno)
    }
    close(high)
    return high
}

private let closedDescriptorCounter = Locked<Int32>(0)

/// A scratch directory for files handed to external tools.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tlskit-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The absolute path of a tool the suite needs; a missing tool fails the test.
func tool(_ name: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TLSError(.invalidConfiguration,
                   "\(name) is not installed: the real-peer tests need it (apt-get install openssl gnutls-bin)",
                   backend: "tests")
}

/// `openssl s_server` on a port it picks itself (`-accept 127.0.0.1:0`); returns once it
/// printed its `ACCEPT 127.0.0.1:<port>` line (printed after it listens), with that port.
func startOpenSSLServer(_ arguments: [String]) throws -> (Peer, UInt16) {
    let server = try Peer(try tool("openssl"), ["s_server", "-accept", "127.0.0.1:0"] + arguments)
    try server.waitFor("ACCEPT 127.0.0.1:")
    let line = server.output.split(separator: "\n").first { $0.hasPrefix("ACCEPT 127.0.0.1:") }
    guard let port = line.flatMap({ UInt16($0.dropFirst("ACCEPT 127.0.0.1:".count)) }) else {
        throw TLSError(.internalError, "no port in s_server's output: \(server.output)", backend: "tests")
    }
    return (server, port)
}

/// `gnutls-serv --port 0`: the kernel picks the port, which gnutls-serv prints as "port 0",
/// so it is read back from the kernel (``listeningPort(of:)``). Returns once it printed
/// its "listening on IPv4 ...done" line (printed after `listen()`).
func startGnuTLSServer(_ arguments: [String]) throws -> (Peer, UInt16) {
    let server = try Peer(try tool("gnutls-serv"), ["--port", "0"] + arguments)
    try server.waitFor("listening on IPv4 0.0.0.0 port 0...done")
    return (server, try listeningPort(of: server.process.processIdentifier))
}

/// Connects to a server that is already listening (a tool that printed its readiness line).
func connectToPeer(port: UInt16, context: TLSContext, serverName: String = "localhost",
                   prepare: (TLSConnection) throws -> Void = { _ in }) throws -> TLSSocket {
    try TLSSocket.connect(host: "127.0.0.1", port: port, context: context,
                          serverName: serverName, timeout: .seconds(10), prepare: prepare)
}

/// Writes text to a file in `directory` and returns its path.
func write(_ text: String, to name: String, in directory: URL) throws -> String {
    let url = directory.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
}

/// Every field of two errors, not just the code (`TLSError`'s `==` compares codes only):
/// for "the first failure's error stays readable" assertions.
func identical(_ a: TLSError?, _ b: TLSError?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a.code == b.code && a.message == b.message && a.backend == b.backend
        && a.alert == b.alert && a.verificationFailure == b.verificationFailure && a.errno == b.errno
}

/// Open descriptors of this process (/proc/self/fd).
func openDescriptors() throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
}

/// Resident memory of this process in bytes (/proc/self/statm, second field).
func residentBytes() throws -> Int {
    let text = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
    let pages = Int(text.split(separator: " ")[1]) ?? 0
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
