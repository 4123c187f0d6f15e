import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// One backend as a test argument, named in the test report.
struct Backend: CustomTestStringConvertible, Sendable {
    let type: any TLSBackend.Type
    var name: String { type.name }
    var testDescription: String { type.name }
}

/// Every backend compiled into this build: the suite runs once per backend.
let allBackends: [Backend] = TLSBackends.available.map { Backend(type: $0) }

/// A result and its `error(for:)` code: what every contract assertion compares.
struct Step: Equatable, CustomStringConvertible {
    var result: Int32
    var code: TLSErrorCode
    init(_ result: Int32, _ code: TLSErrorCode) {
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

/// A TCP port on 127.0.0.1 that refuses connections and that nobody else can take while
/// the returned descriptor stays open: bound, never listening. Close the descriptor after use.
func refusingPort() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TLSError(.transportFailure, "socket failed", backend: "tests", errno: errno) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else {
        let error = errno
        close(fd)
        throw TLSError(.transportFailure, "bind failed", backend: "tests", errno: error)
    }
    return (fd, UInt16(bigEndian: address.sin_port))
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

/// An external process (a real TLS peer) with its stdin, stdout and stderr captured.
///
/// The three streams are socket pairs made with `SOCK_CLOEXEC` in one call, so a process
/// that a parallel test spawns at the same moment cannot inherit our ends (as it can
/// with `Pipe`, whose descriptors are inheritable): end of output arrives exactly when
/// this child exits, and `wait()` returns once everything it wrote is captured.
final class Peer: @unchecked Sendable {
    let process = Process()
    private let input: Int32
    private let outputBox = Locked(Data()), errorBox = Locked(Data())
    /// How many of stdout and stderr have reached end of file.
    private let closedStreams = Locked(0)
    private let inputClosed = Locked(false)
    /// Signalled on every chunk of output and at end of file.
    private let progress = NSCondition()

    init(_ executable: String, _ arguments: [String]) throws {
        func streamPair() throws -> (parent: Int32, child: Int32) {
            var fds: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw TLSError(.internalError, "socketpair failed", backend: "tests", errno: errno)
            }
            return (fds[0], fds[1])
        }
        let stdinPair = try streamPair(), stdoutPair = try streamPair(), stderrPair = try streamPair()
        input = stdinPair.parent
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle(fileDescriptor: stdinPair.child, closeOnDealloc: false)
        process.standardOutput = FileHandle(fileDescriptor: stdoutPair.child, closeOnDealloc: false)
        process.standardError = FileHandle(fileDescriptor: stderrPair.child, closeOnDealloc: false)
        defer {
            // The child has its copies (or never started): ours would hold the streams open.
            for fd in [stdinPair.child, stdoutPair.child, stderrPair.child] { close(fd) }
        }
        for (fd, box) in [(stdoutPair.parent, outputBox), (stderrPair.parent, errorBox)] {
            let reader = Thread { [closedStreams, progress] in
                var chunk = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = read(fd, &chunk, chunk.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    box.withLock { $0.append(contentsOf: chunk[0..<n]) }
                    progress.lock(); progress.broadcast(); progress.unlock()
                }
                close(fd)
                closedStreams.withLock { $0 += 1 }
                progress.lock(); progress.broadcast(); progress.unlock()
            }
            reader.start()
        }
        do {
            try process.run()
        } catch {
            close(input)
            throw error
        }
    }

    var output: String { String(decoding: outputBox.withLock { $0 }, as: UTF8.self) }
    var errorOutput: String { String(decoding: errorBox.withLock { $0 }, as: UTF8.self) }

    /// Writes `text` to the child's stdin (blocking until it is all taken).
    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count, !inputClosed.withLock({ $0 }) {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(input, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }  // the child closed its stdin
            offset += n
        }
    }

    /// Ends the child's stdin.
    func closeInput() {
        let first = inputClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { close(input) }
    }

    /// Waits until stdout or stderr contains `text` (the tool's own readiness line),
    /// woken by each chunk of output; throws after `timeout` seconds or when the
    /// process closed both streams without printing it.
    func waitFor(_ text: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        progress.lock()
        defer { progress.unlock() }
        while true {
            if output.contains(text) || errorOutput.contains(text) { return }
            if closedStreams.withLock({ $0 }) == 2 { break }
            if !progress.wait(until: deadline) { break }
        }
        if output.contains(text) || errorOutput.contains(text) { return }
        throw TLSError(.timedOut, "no \"\(text)\" from \(process.executableURL?.lastPathComponent ?? "?"); "
                       + "stdout: \(output) stderr: \(errorOutput)", backend: "tests")
    }

    /// Waits for the process to exit and for its output to be captured; kills it after
    /// `timeout` seconds and returns -1 then, so a peer stopped at its time-out never
    /// passes as a success.
    @discardableResult
    func wait(timeout: TimeInterval = 30) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        progress.lock()
        while closedStreams.withLock({ $0 }) < 2 && progress.wait(until: deadline) {}
        progress.unlock()
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning || closedStreams.withLock({ $0 }) < 2 {
            stop()
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Ends the process: SIGTERM, then SIGKILL (gnutls-serv ignores SIGTERM).
    func stop() {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        // Its output is complete once both streams reached end of file (bounded: a
        // grandchild holding them open must not hang the test).
        let drained = Date().addingTimeInterval(10)
        progress.lock()
        while closedStreams.withLock({ $0 }) < 2 && progress.wait(until: drained) {}
        progress.unlock()
    }

    deinit {
        stop()
        closeInput()
    }
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

/// `gnutls-serv --port 0`: the kernel picks the port. gnutls-serv prints "port 0", so
/// the port is read back from the kernel: the IPv4 listening socket this process owns
/// (`/proc/<pid>/fd` socket inodes matched in `/proc/net/tcp`). Returns once it printed
/// its "listening on IPv4 ...done" line (printed after `listen()`).
func startGnuTLSServer(_ arguments: [String]) throws -> (Peer, UInt16) {
    let server = try Peer(try tool("gnutls-serv"), ["--port", "0"] + arguments)
    try server.waitFor("listening on IPv4 0.0.0.0 port 0...done")
    let pid = server.process.processIdentifier
    let inodes = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { name -> String? in
        let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)")
        guard let target, target.hasPrefix("socket:[") else { return nil }
        return String(target.dropFirst("socket:[".count).dropLast())
    })
    for line in try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        // sl local_address rem_address st ... inode: state 0A is LISTEN.
        guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
              let port = fields[1].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) }) else { continue }
        return (server, port)
    }
    throw TLSError(.internalError, "gnutls-serv (pid \(pid)) owns no IPv4 listening socket", backend: "tests")
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

/// A process-wide gate between suites, shared by every test target in this process (a
/// `flock` on a file named after the process): suites that measure the process's own
/// descriptors or resident memory (`.measuresProcess`) run alone, while every other
/// suite (`.sharesProcess`) may run in parallel with the others. Waiting happens on a
/// thread of its own, never on the concurrency pool.
struct ProcessGate: SuiteTrait, TestScoping {
    let exclusive: Bool
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let fd = try await acquire()
        defer { flock(fd, LOCK_UN); close(fd) }
        try await function()
    }

    private func acquire() async throws -> Int32 {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tlskit-tests-\(getpid()).gate").path
        let exclusive = exclusive
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            Thread {
                let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    continuation.resume(throwing: TLSError(.internalError, "cannot open \(path)", backend: "tests", errno: errno))
                    return
                }
                while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 && errno == EINTR {}
                continuation.resume(returning: fd)
            }.start()
        }
    }
}

extension Trait where Self == ProcessGate {
    /// This suite runs alongside any other, but never while a measuring suite runs.
    static var sharesProcess: Self { ProcessGate(exclusive: false) }
    /// This suite measures process-wide figures: it runs with no other suite.
    static var measuresProcess: Self { ProcessGate(exclusive: true) }
}
