import Foundation
import Testing
import TLSKit

/// Every descriptor `tlsctl serve` (and TLSKit's `TLSListener` under it) creates is
/// close-on-exec from birth — `accept4`/`socket`/`socketpair` with the flag, never a plain
/// `accept` or `pipe` followed by `fcntl`, where a process spawned by another thread in
/// between would inherit it. Read from `strace`: the system calls themselves.
@Suite("tlsctl serve: descriptors close-on-exec from birth", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlCloseOnExecTests {
    @Test("serve --forward: listener, accepted connection, signal socket pair and relay socket", arguments: allBackends)
    func closeOnExecFromBirth(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        // The plaintext target the relay connects to.
        let target = try TLSListener(host: "127.0.0.1", port: 0)
        let trace = files.directory.appendingPathComponent("strace.txt").path
        let (child, port) = try tracedServe("socket,socketpair,accept,accept4,pipe,pipe2", trace: trace, [
            "--backend", backend.name, "--cert", files.cert, "--key", files.key,
            "--forward", "127.0.0.1:\(target.port)", "--max-connections", "1",
        ])
        defer { child.stop() }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: try files.clientContext(backend),
                                           timeout: .seconds(30))
        let relayed = try target.acceptDescriptor(timeout: .seconds(30))
        close(relayed)
        try socket.shutdown(waitForPeer: true)
        #expect(child.wait(timeout: 60) == 0)

        let calls = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { line in
            ["socket(", "socketpair(", "accept(", "accept4(", "pipe(", "pipe2("].contains { line.contains(" \($0)") || line.contains("]\($0)") }
                && !line.contains("= -1")
        }
        let made = calls.map { String($0) }
        // At least: the listener, the accepted connection, the signal pipe, the relay's socket.
        #expect(made.contains { $0.contains("accept4(") }, "\(made)")
        #expect(made.contains { $0.contains("socketpair(") }, "\(made)")
        #expect(made.filter { $0.contains(" socket(") || $0.contains("]socket(") }.count >= 2, "\(made)")
        for call in made {
            #expect(call.contains("SOCK_CLOEXEC") || call.contains("O_CLOEXEC"), "not close-on-exec from birth: \(call)")
        }
    }
}
