import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// How many writes `tlsctl serve` makes for a handshake and for each reply, counted
/// with `strace` (syscalls, not time: immune to machine load). A small write that
/// follows another one unacknowledged waits, with Nagle's algorithm on either side,
/// for a delayed ACK (~40 ms); one write per flight and per reply avoids it.
@Suite("tlsctl serve: writes per handshake and per reply", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlWriteCountTests {
    @Test("TLS 1.3 echo: the flight in one write, the tickets after the client's Finished, one write per reply",
          arguments: allBackends)
    func writesPerExchange(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let trace = files.directory.appendingPathComponent("strace.txt").path
        let (child, port) = try tracedServe("sendto,sendmsg,write,writev,recvfrom,read", trace: trace, [
            "--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
            "--max-connections", "1",
        ])
        defer { child.stop() }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: try files.clientContext(backend),
                                           timeout: .seconds(30))
        let rounds = 3
        let deadline = ContinuousClock.now + .seconds(30)
        for round in 0..<rounds {
            let message = Array("ping \(round)".utf8)
            try socket.write(message)
            #expect(try Self.read(socket, count: message.count, until: deadline) == message)
        }
        try socket.shutdown(waitForPeer: true)
        #expect(child.wait(timeout: 60) == 0)

        // The accepted socket's sends, in order, with the reads of it between them.
        let text = try String(contentsOfFile: trace, encoding: .utf8)
        let acceptedFD = text.split(separator: "\n").compactMap { line -> Substring? in
            guard let range = line.range(of: "recvfrom(") else { return nil }
            return line[range.upperBound...].prefix(while: { $0 != "," })
        }.first
        let fd = try #require(acceptedFD, "\(text.prefix(2000))")
        let calls = text.split(separator: "\n").filter { line in
            !line.contains("EAGAIN") && ["sendto(", "sendmsg(", "recvfrom("].contains { line.contains("\($0)\(fd),") }
        }
        let sends = calls.filter { $0.contains("sendto(") || $0.contains("sendmsg(") }
        // Flight, tickets, `rounds` replies, close_notify. OpenSSL writes its two tickets
        // one by one (3 handshake writes); TLSKit's GnuTLS backend, both at once (2).
        let handshakeWrites = backend.name == "OpenSSL" ? 3 : 2
        #expect(sends.count == handshakeWrites + rounds + 1, "\(sends.joined(separator: "\n"))")
        // The first write after the flight answers the client's Finished: a read of
        // the socket comes between the flight and the tickets.
        let sendIndices = calls.indices.filter { calls[$0].contains("sendto(") || calls[$0].contains("sendmsg(") }
        try #require(sendIndices.count >= 2, "\(calls.joined(separator: "\n"))")
        #expect(calls[(sendIndices[0] + 1)..<sendIndices[1]].contains { $0.contains("recvfrom(") },
                "\(calls.joined(separator: "\n"))")
    }

    /// Reads until `count` bytes arrived or the peer closed the stream (close_notify):
    /// what arrived. Past `deadline` the read throws (the socket's time-out), so a peer
    /// that stalls fails the test instead of hanging it.
    private static func read(_ socket: TLSSocket, count: Int, until deadline: ContinuousClock.Instant) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            socket.timeout = max(.zero, deadline - .now)
            let chunk = try socket.read(maxBytes: count - bytes.count)
            if chunk.isEmpty { break }
            bytes += chunk
        }
        return bytes
    }
}
