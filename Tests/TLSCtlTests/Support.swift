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

/// Every backend compiled into this build: each test runs once per backend.
let allBackends: [Backend] = TLSBackends.available.map { Backend(type: $0) }

/// Every (client, server) pair of compiled backends: one pair per build with one
/// backend, four with both.
let backendPairs: [(Backend, Backend)] = allBackends.flatMap { client in allBackends.map { (client, $0) } }

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

/// The absolute path of a tool the tests need; a missing tool fails the test.
func tool(_ name: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TLSError(.invalidConfiguration,
                   "\(name) is not installed: the tlsctl tests need it (apt-get install openssl gnutls-bin curl)",
                   backend: "tests")
}

/// A scratch directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tlsctl-tests-\(UUID().uuidString)")
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

/// The IPv4 port a process listens on, read back from the kernel (`/proc/<pid>/fd`
/// socket inodes matched in `/proc/net/tcp`): for tools that pick port 0 without saying
/// which port they got (gnutls-serv prints "port 0").
func listeningPort(of pid: Int32) throws -> UInt16 {
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
        return port
    }
    throw TLSError(.internalError, "process \(pid) owns no IPv4 listening socket", backend: "tests")
}

/// A certificate and key generated now by the backend, written to files for the tools.
struct CertificateFiles {
    let directory: URL
    let identity: TLSIdentity
    let cert: String
    let key: String

    init(_ backend: Backend, name: String = "server", names: [String] = ["localhost", "127.0.0.1", "::1"]) throws {
        directory = try temporaryDirectory()
        identity = try backend.type.makeSelfSignedIdentity(
            commonName: names.first ?? name, subjectAlternativeNames: names, validityDays: 2)
        cert = directory.appendingPathComponent("\(name).pem").path
        key = directory.appendingPathComponent("\(name).key").path
        try identity.certificateChainPEM.write(toFile: cert, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
    }

    /// A file with any text in the same directory.
    func file(_ name: String, _ text: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// A child process (tlsctl or a real peer) with its stdin, stdout and stderr captured.
///
/// The three streams are socket pairs made with `SOCK_CLOEXEC` in one call, so a process
/// that a parallel test spawns at the same moment cannot inherit our ends (as it can
/// with `Pipe`, whose descriptors are inheritable): end of input and end of output
/// arrive exactly when this child closes them.
final class Child: @unchecked Sendable {
    let process = Process()
    private let input: Int32
    private let outputBox = Locked(Data()), errorBox = Locked(Data())
    /// How many of stdout and stderr have reached end of file.
    private let closedStreams = Locked(0)
    private let inputClosed = Locked(false)

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
            let reader = Thread { [closedStreams] in
                var chunk = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = read(fd, &chunk, chunk.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    box.withLock { $0.append(contentsOf: chunk[0..<n]) }
                }
                close(fd)
                closedStreams.withLock { $0 += 1 }
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

    /// tlsctl with these arguments.
    static func tlsctl(_ arguments: [String]) throws -> Child {
        try Child(try tlsctlPath(), arguments)
    }

    var output: String { String(decoding: outputBox.withLock { $0 }, as: UTF8.self) }
    var errorOutput: String { String(decoding: errorBox.withLock { $0 }, as: UTF8.self) }
    /// The raw bytes written to stdout and stderr so far.
    var outputBytes: [UInt8] { Array(outputBox.withLock { $0 }) }
    var errorBytes: [UInt8] { Array(errorBox.withLock { $0 }) }

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

    /// Waits until stdout contains `text`; throws after `timeout` seconds or if the process exits first.
    func waitForOutput(_ text: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return }
            if !process.isRunning {
                usleep(50_000)
                if output.contains(text) { return }
                break
            }
            usleep(10_000)
        }
        throw TLSError(.timedOut, "no \"\(text)\" on stdout; stdout: \(output) stderr: \(errorOutput)", backend: "tests")
    }

    /// Waits until stderr contains `text`, at most `timeout` seconds; false if it never did.
    func stderrEventually(contains text: String, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if errorOutput.contains(text) { return true }
            usleep(20_000)
        }
        return errorOutput.contains(text)
    }

    /// Waits for the process to exit; kills it after `timeout` seconds and returns -1 then.
    @discardableResult
    func wait(timeout: TimeInterval = 30) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            stop()
            return -1
        }
        process.waitUntilExit()
        // Everything the process wrote is captured once both streams reached end of file.
        let drained = Date().addingTimeInterval(10)
        while closedStreams.withLock({ $0 }) < 2 && Date() < drained { usleep(2_000) }
        return process.terminationStatus
    }

    /// Sends a signal (SIGINT, SIGTERM) to the process.
    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Ends the process: SIGTERM, then SIGKILL (gnutls-serv ignores SIGTERM).
    func stop() {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        closeInput()
    }
}

/// A running `tlsctl serve`, started with `--port 0`, once it printed its port.
struct Server {
    let child: Child
    let port: UInt16
    /// The `SHA-256 fingerprint:` line's value.
    let fingerprint: String

    init(_ arguments: [String]) throws {
        child = try Child.tlsctl(["serve", "--port", "0"] + arguments)
        try child.waitForOutput("listening on ")
        let lines = child.output.split(separator: "\n")
        guard let listening = lines.first(where: { $0.hasPrefix("listening on ") }),
              let colon = listening.lastIndex(of: ":"),
              let port = UInt16(listening[listening.index(after: colon)...]) else {
            throw TLSError(.internalError, "no port in: \(child.output)", backend: "tests")
        }
        self.port = port
        fingerprint = lines.first(where: { $0.hasPrefix("SHA-256 fingerprint: ") })
            .map { String($0.dropFirst("SHA-256 fingerprint: ".count)) } ?? ""
    }
}

/// Runs tlsctl with `input` on stdin (then end of input) and waits for it to exit.
func runTLSCtl(_ arguments: [String], input: String, timeout: TimeInterval = 30) throws -> (Int32, String, String) {
    let child = try Child.tlsctl(arguments)
    child.send(input)
    child.closeInput()
    let status = child.wait(timeout: timeout)
    return (status, child.output, child.errorOutput)
}

/// Runs a tool to completion with `input` on stdin.
func run(_ executable: String, _ arguments: [String], input: String = "", timeout: TimeInterval = 30) throws -> (Int32, String, String) {
    let child = try Child(executable, arguments)
    child.send(input)
    child.closeInput()
    let status = child.wait(timeout: timeout)
    return (status, child.output, child.errorOutput)
}

/// The lines of a text, without empty ones.
func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

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
