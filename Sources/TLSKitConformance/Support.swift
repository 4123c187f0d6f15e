import Foundation
import Testing
import TLSCore

#if canImport(Glibc)
import Glibc
#endif

// The cases' helpers: internal to the library, over TLSCore's public API only.

/// The backend under test and where its certificates come from: what every case gets.
struct Backend: Sendable {
    let type: any TLSBackend.Type
    let identities: TLSConformanceIdentities
    var id: TLSBackendID { type.id }
    var name: String { type.id.name }
    var capabilities: TLSCapabilities { type.capabilities }
}

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

/// Certificates and contexts for one backend, generated at run time.
struct Fixture {
    let backend: any TLSBackend.Type
    let identity: TLSIdentity

    init(_ backend: Backend) throws {
        self.backend = backend.type
        identity = try backend.identities.leaf(for: backend.type)
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

/// A client and a server connected by two in-memory pairs; the case moves the bytes.
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

    @discardableResult
    func exchange() -> Int { TLSMemoryPair.exchange(clientWire, serverWire) }

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

/// A value behind a lock, shareable between threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
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
            throw TLSError(.timedOut, "background thread did not finish in \(timeout) s", backend: "conformance")
        }
        return try outcome.withLock { $0! }.get()
    }
}

/// A connected pair of UNIX stream sockets, close-on-exec.
func socketPair(nonBlocking: Bool = false) throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
        throw TLSError(.transportFailure, "socketpair failed", backend: "conformance", errno: errno)
    }
    return (fds[0], fds[1])
}

/// A descriptor number that was open and is now closed, chosen near the top of the
/// descriptor table: descriptors are allocated lowest-first, so tests running in
/// parallel do not reuse it, and every call gets a number of its own.
func makeClosedDescriptor() throws -> Int32 {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    // Below the numbers TLSKit's own tests take from the top (they count down 256).
    let top = Int32(clamping: min(limit.rlim_cur, 65_536)) - 1 - 256
    let offset = closedDescriptorCounter.withLock { value -> Int32 in
        defer { value = (value + 1) % 256 }
        return value
    }
    let (a, b) = try socketPair()
    defer { close(a); close(b) }
    let high = top - offset
    guard dup2(a, high) == high else {
        throw TLSError(.transportFailure, "dup2 to \(high) failed", backend: "conformance", errno: errno)
    }
    close(high)
    return high
}

private let closedDescriptorCounter = Locked<Int32>(0)

/// `pipe2(fds, O_CLOEXEC)`: a pipe close-on-exec from birth. Glibc's Swift module does
/// not export `pipe2` (declared under `_GNU_SOURCE`), so it is looked up once.
func closeOnExecPipe(_ fds: UnsafeMutablePointer<Int32>) -> Int32 {
    pipe2Function(fds, O_CLOEXEC)
}

private let pipe2Function: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32 = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else { fatalError("no pipe2(2) in the C library") }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self)
}()

/// A scratch directory of its own.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tlskit-conformance-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The absolute path of a tool a case needs; a missing tool fails the case.
func tool(_ name: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TLSError(.invalidConfiguration, "\(name) is not installed: the conformance suite needs it", backend: "conformance")
}

/// Runs `executable` with `arguments` to its end, stdin empty, stdout and stderr in files
/// of `directory` (no pipe a parallel test's child could inherit); returns its exit
/// status and output.
func runTool(_ executable: String, _ arguments: [String], in directory: URL) throws
    -> (status: Int32, output: String, errorOutput: String) {
    let name = UUID().uuidString
    let out = directory.appendingPathComponent("\(name).out"), err = directory.appendingPathComponent("\(name).err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
    defer {
        try? outHandle.close()
        try? errHandle.close()
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    process.standardOutput = outHandle
    process.standardError = errHandle
    try process.run()
    process.waitUntilExit()
    // Read through FileHandle: String(contentsOf:) leaks its read buffer for an empty
    // file in this Foundation (LeakSanitizer caught it on an empty stderr).
    func text(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
    }
    return (process.terminationStatus, try text(out), try text(err))
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

/// Record-layer bytes the cases write and read by hand (RFC 8446 §5.1, RFC 5246 §6.2).
enum Wire {
    /// An alert record: level 2 (fatal) or 1 (warning), legacy version 3,3.
    static func alertRecord(_ alert: TLSAlert, fatal: Bool = true) -> [UInt8] {
        [21, 3, 3, 0, 2, fatal ? 2 : 1, alert.rawValue]
    }

    /// The level and alert of `bytes` when they start with an unprotected alert record.
    static func plaintextAlert(_ bytes: [UInt8]) -> (level: UInt8, alert: TLSAlert)? {
        let b = Array(bytes.prefix(7))
        guard b.count == 7, b[0] == 21, b[1] == 3, b[3] == 0, b[4] == 2 else { return nil }
        return (b[5], TLSAlert(b[6]))
    }

    /// The content types of the records in `bytes`, in order (a cut last record counts).
    static func recordTypes(_ bytes: [UInt8]) -> [UInt8] {
        var types: [UInt8] = []
        var index = 0
        while index + 5 <= bytes.count {
            types.append(bytes[index])
            index += 5 + (Int(bytes[index + 3]) << 8 | Int(bytes[index + 4]))
        }
        return types
    }

    /// The first record of `bytes` (header and body).
    static func firstRecord(_ bytes: [UInt8]) -> [UInt8] {
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        return Array(bytes.prefix(5 + length))
    }
}

/// The PEM blocks of the certificates in `text`, in order, each with its BEGIN/END lines.
func pemCertificates(_ text: String) -> [String] {
    var blocks: [String] = [], current: [Substring]? = nil
    for line in text.split(separator: "\n") {
        if line.hasPrefix("-----BEGIN CERTIFICATE") { current = [line]; continue }
        guard current != nil else { continue }
        current!.append(line)
        if line.hasPrefix("-----END CERTIFICATE") {
            blocks.append(current!.joined(separator: "\n") + "\n")
            current = nil
        }
    }
    return blocks
}

/// The DER bytes of the first certificate in a PEM text (empty when there is none).
func derBytes(ofPEM pem: String) -> [UInt8] {
    let lines = pem.split(separator: "\n")
    guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN CERTIFICATE") }),
          let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END CERTIFICATE") }) else { return [] }
    return Array(Data(base64Encoded: lines[(begin + 1)..<end].joined()) ?? Data())
}
