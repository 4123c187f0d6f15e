import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// `tlsctl serve --http` and the request heads clients really send: CRLF, bare LF
/// (RFC 9112 §2.2), a head cut into many records, and one that never ends.
@Suite("tlsctl serve --http request heads", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlHTTPTests {
    /// Sends `pieces` as separate writes (one TLS record each) over one connection
    /// to a fresh `serve --http`, and returns everything the server sent until it closed.
    static func exchange(_ backend: Backend, _ pieces: [[UInt8]]) throws -> String {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--http",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: server.port, context: try files.clientContext(backend),
                                           timeout: .seconds(20))
        for piece in pieces { try socket.write(piece) }
        var reply: [UInt8] = []
        while true {
            let chunk = try socket.read()
            if chunk.isEmpty { break }
            reply += chunk
        }
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput)")
        return String(decoding: reply, as: UTF8.self)
    }

    @Test("a CRLF request gets 200 and the page", arguments: allBackends)
    func crlf(backend: Backend) throws {
        let reply = try Self.exchange(backend, [Array("GET /crlf HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)])
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(reply)")
        #expect(reply.contains("\r\nConnection: close\r\n"), "\(reply)")
        #expect(reply.contains("request:       GET /crlf HTTP/1.0\n"), "\(reply)")
    }

    @Test("bare LF line ends (GET / HTTP/1.0\\n\\n) get 200, as from openssl s_server -www", arguments: allBackends)
    func bareLF(backend: Backend) throws {
        let reply = try Self.exchange(backend, [Array("GET /lf HTTP/1.0\nHost: localhost\n\n".utf8)])
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(reply)")
        #expect(reply.contains("request:       GET /lf HTTP/1.0\n"), "\(reply)")
        #expect(reply.components(separatedBy: "HTTP/1.1 ").count == 2, "\(reply)")
    }

    @Test("keep-alive with bare LF: two requests on one connection, and an empty line between them is skipped",
          arguments: allBackends)
    func bareLFKeepAlive(backend: Backend) throws {
        let reply = try Self.exchange(backend, [
            Array("GET /one HTTP/1.1\nHost: localhost\n\n".utf8),
            Array("\r\nGET /two HTTP/1.1\r\nHost: localhost\nConnection: close\r\n\n".utf8),
        ])
        #expect(reply.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3, "\(reply)")
        #expect(reply.contains("request:       GET /one HTTP/1.1\n"), "\(reply)")
        #expect(reply.contains("request:       GET /two HTTP/1.1\n"), "\(reply)")
    }

    @Test("a request head cut into one record per byte is answered once it is whole", arguments: allBackends)
    func splitAcrossRecords(backend: Backend) throws {
        let request = Array("GET /split HTTP/1.0\r\nHost: localhost\r\nX-Padding: \(String(repeating: "p", count: 100))\r\n\r\n".utf8)
        let reply = try Self.exchange(backend, request.map { [$0] })
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(reply)")
        #expect(reply.contains("request:       GET /split HTTP/1.0\n"), "\(reply)")
        #expect(reply.components(separatedBy: "HTTP/1.1 ").count == 2, "\(reply)")
    }

    @Test("a head that does not end within 16 KiB gets 400 and the connection is closed", arguments: allBackends)
    func oversizedHead(backend: Backend) throws {
        // Header lines, none empty: 17 KiB in 1 KiB records, and no end of head.
        let line = Array("X-Filler: \(String(repeating: "f", count: 1012))\r\n".utf8)
        #expect(line.count == 1024)
        let pieces = [Array("GET /big HTTP/1.1\r\n".utf8)] + Array(repeating: line, count: 17)
        let reply = try Self.exchange(backend, pieces)
        #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(reply.prefix(300))")
        #expect(reply.contains("\r\nConnection: close\r\n"), "\(reply.prefix(300))")
        #expect(reply.hasSuffix("\r\n\r\nrequest head not ended within 16384 bytes\n"), "\(reply.prefix(300))")
        #expect(!reply.contains("200 OK"))
    }
}
