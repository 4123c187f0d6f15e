package import Foundation
package import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// A value behind a lock, shareable between threads.
package final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    package init(_ value: Value) { self.value = value }
    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A TCP port on 127.0.0.1 that refuses connections and that nobody else can take while
/// the returned descriptor stays open: bound, never listening. Close the descriptor after use.
package func refusingPort() throws -> (fd: Int32, port: UInt16) {
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
package func listeningPort(of pid: Int32) throws -> UInt16 {
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

/// A child process (tlsctl or a real TLS peer) with its stdin, stdout and stderr captured.
///
/// The three streams are socket pairs made with `SOCK_CLOEXEC` in one call, so a process
/// that a parallel test spawns at the same moment cannot inherit our ends (as it can
/// with `Pipe`, whose descriptors are inheritable): end of output arrives exactly when
/// this child exits, and `wait()` returns once everything it wrote is captured.
package final class Child: @unchecked Sendable {
    package let process = Process()
    private let input: Int32
    private let outputBox = Locked(Data()), errorBox = Locked(Data())
    /// How many of stdout and stderr have reached end of file.
    private let closedStreams = Locked(0)
    private let inputClosed = Locked(false)
    /// Signalled on every chunk of output and at end of file.
    private let progress = NSCondition()

    package init(_ executable: String, _ arguments: [String]) throws {
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

    package var output: String { String(decoding: outputBox.withLock { $0 }, as: UTF8.self) }
    package var errorOutput: String { String(decoding: errorBox.withLock { $0 }, as: UTF8.self) }
    /// The raw bytes written to stdout and stderr so far.
    package var outputBytes: [UInt8] { Array(outputBox.withLock { $0 }) }
    package var errorBytes: [UInt8] { Array(errorBox.withLock { $0 }) }

    /// Writes `text` to the child's stdin (blocking until it is all taken).
    package func send(_ text: String) {
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
    package func closeInput() {
        let first = inputClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { close(input) }
    }

    /// Waits until stdout or stderr contains `text` (the tool's own readiness line),
    /// woken by each chunk of output; throws after `timeout` seconds or when the
    /// process closed both streams without printing it.
    package func waitFor(_ text: String, timeout: TimeInterval = 30) throws {
        guard waitUntil(timeout: timeout, { $0.output.contains(text) || $0.errorOutput.contains(text) }) else {
            throw TLSError(.timedOut, "no \"\(text)\" from \(process.executableURL?.lastPathComponent ?? "?"); "
                           + "stdout: \(output) stderr: \(errorOutput)", backend: "tests")
        }
    }

    /// Waits for the process to exit and for its output to be captured; kills it after
    /// `timeout` seconds and returns -1 then, so a peer stopped at its time-out never
    /// passes as a success.
    @discardableResult
    package func wait(timeout: TimeInterval = 30) -> Int32 {
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
    package func stop() {
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

    /// Waits until stdout contains `text`; throws after `timeout` seconds or once the
    /// process closed its output without printing it.
    package func waitForOutput(_ text: String, timeout: TimeInterval = 30) throws {
        guard waitUntil(timeout: timeout, { $0.output.contains(text) }) else {
            throw TLSError(.timedOut, "no \"\(text)\" on stdout; stdout: \(output) stderr: \(errorOutput)", backend: "tests")
        }
    }

    /// Waits until stderr contains `text`, at most `timeout` seconds; false if it never did.
    package func stderrEventually(contains text: String, timeout: TimeInterval = 30) -> Bool {
        waitUntil(timeout: timeout) { $0.errorOutput.contains(text) }
    }

    /// Sends a signal (SIGINT, SIGTERM) to the process.
    package func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits, woken by each chunk of output, until `condition` holds (true), both streams
    /// are closed or `timeout` seconds passed (then whether it holds at last).
    private func waitUntil(timeout: TimeInterval, _ condition: (Child) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        progress.lock()
        defer { progress.unlock() }
        while !condition(self) {
            if closedStreams.withLock({ $0 }) == 2 || !progress.wait(until: deadline) { return condition(self) }
        }
        return true
    }

    deinit {
        stop()
        closeInput()
    }
}


/// A process-wide gate between suites, shared by every test target in this process (a
/// `flock` on a file named after the process): suites that measure the process's own
/// descriptors or resident memory (`.measuresProcess`) run alone, while every other
/// suite (`.sharesProcess`) may run in parallel with the others. Waiting happens on a
/// thread of its own, never on the concurrency pool.
package struct ProcessGate: SuiteTrait, TestScoping {
    package let exclusive: Bool
    package var isRecursive: Bool { false }

    package func provideScope(for test: Test, testCase: Test.Case?,
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
    package static var sharesProcess: Self { ProcessGate(exclusive: false) }
    /// This suite measures process-wide figures: it runs with no other suite.
    package static var measuresProcess: Self { ProcessGate(exclusive: true) }
}

/// `pipe2(fds, O_CLOEXEC)`: a pipe close-on-exec from birth, so a tool another test
/// spawns at the same moment never inherits it. Glibc's Swift module does not export
/// `pipe2` (declared under `_GNU_SOURCE`), so it is looked up once.
package func closeOnExecPipe(_ fds: UnsafeMutablePointer<Int32>) -> Int32 {
    pipe2Function(fds, O_CLOEXEC)
}

private let pipe2Function: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32 = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else { fatalError("no pipe2(2) in the C library") }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self)
}()
