import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// `tlsctl serve --forward` (TLS-terminating proxy) in front of Python backends, reached by
/// curl, gnutls-cli and `tlsctl connect`; `tlsctl connect --listen` (the client side of a
/// tunnel) to `openssl s_server`, reached by plain TCP clients. Every port is picked by the
/// tool that listens and read back from its output.
@Suite("tlsctl tunnels", .serialized, .timeLimit(.minutes(10)), .sharesProcess)
struct TLSCtlTunnelTests {
    /// An HTTP backend (`http.server`): GET answers `hello from the backend: PATH\n`,
    /// POST answers with the request body. Prints its port first.
    static let httpBackend = """
        import http.server
        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, body):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_GET(self):
                self.reply(("hello from the backend: " + self.path + "\\n").encode())
            def do_POST(self):
                self.reply(self.rfile.read(int(self.headers["Content-Length"])))
            def log_message(self, *arguments):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    /// A raw TCP backend: `echo` sends every byte back; `count` reads to the end of the
    /// stream and only then answers `received N bytes\n`. Both shut their write side at
    /// the end of the client's stream. Prints its port first.
    static let streamBackend = """
        import socket, sys, threading
        mode = sys.argv[1]
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        print(listener.getsockname()[1], flush=True)
        def serve(connection):
            count = 0
            while True:
                data = connection.recv(65536)
                if not data:
                    break
                count += len(data)
                if mode == "echo":
                    connection.sendall(data)
            if mode == "count":
                connection.sendall(b"received %d bytes\\n" % count)
            connection.shutdown(socket.SHUT_WR)
            connection.close()
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
        """

    /// A plain TCP client: sends argv[2], shuts its write side, prints what comes back
    /// until the end of the stream (or `RESET` if the connection was reset).
    static let halfClosingClient = """
        import socket, sys
        connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        received = b""
        try:
            connection.sendall(sys.argv[2].encode())
            connection.shutdown(socket.SHUT_WR)
            while True:
                data = connection.recv(65536)
                if not data:
                    break
                received += data
        except (ConnectionResetError, BrokenPipeError):
            received += b"RESET"
        sys.stdout.write(received.decode())
        """

    /// Starts a Python backend and reads the port it printed.
    private func backend(_ script: String, _ arguments: [String] = []) throws -> (Child, UInt16) {
        let child = try Child(try tool("python3"), ["-c", script] + arguments)
        try child.waitForOutput("\n")
        guard let port = UInt16(child.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TLSError(.internalError, "no port from the backend: \(child.output) \(child.errorOutput)", backend: "tests")
        }
        return (child, port)
    }

    /// `openssl s_server` on a port it picks, for one connection.
    private func openSSLServer(_ files: CertificateFiles, _ mode: String) throws -> (Child, UInt16) {
        let server = try Child(try tool("openssl"), [
            "s_server", "-accept", "127.0.0.1:0", "-cert", files.cert, "-key", files.key, mode, "-naccept", "1",
        ])
        try server.waitForOutput("ACCEPT 127.0.0.1:", timeout: 30)
        let line = server.output.split(separator: "\n").first { $0.hasPrefix("ACCEPT 127.0.0.1:") }
        guard let port = line.flatMap({ UInt16($0.dropFirst("ACCEPT 127.0.0.1:".count)) }) else {
            throw TLSError(.internalError, "no port in s_server's output: \(server.output)", backend: "tests")
        }
        return (server, port)
    }

    /// `tlsctl connect TARGET --listen 0 …` once it printed the port it listens on.
    private func listener(_ arguments: [String]) throws -> (Child, UInt16) {
        let child = try Child.tlsctl(["connect"] + arguments + ["--listen", "0"])
        try child.waitForOutput("listening on 127.0.0.1:")
        let line = child.output.split(separator: "\n").first { $0.hasPrefix("listening on 127.0.0.1:") }
        guard let port = line.flatMap({ UInt16($0.dropFirst("listening on 127.0.0.1:".count)) }) else {
            throw TLSError(.internalError, "no port in: \(child.output)", backend: "tests")
        }
        return (child, port)
    }

    /// `tlsctl serve --forward 127.0.0.1:PORT --max-connections 1` with the test certificate.
    private func forwardingServer(_ backend: Backend, _ files: CertificateFiles, to port: UInt16) throws -> Server {
        try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key,
                    "--forward", "127.0.0.1:\(port)", "--max-connections", "1"])
    }

    /// `child` wrote exactly one line on stderr, a tunnel line as ``isTunnelLine``.
    private func expectOneTunnelLine(_ child: Child, target: String, traffic: String, ending: String,
                                     sourceLocation: SourceLocation = #_sourceLocation) throws {
        let log = lines(child.errorOutput)
        try #require(log.count == 1, "\(log)", sourceLocation: sourceLocation)
        #expect(try isTunnelLine(log[0], target: target, traffic: traffic, ending: ending),
                "\(log)", sourceLocation: sourceLocation)
    }

    /// Whether `line` is exactly one tunnel log line from 127.0.0.1 (any port) to `target`
    /// with TLS 1.3 and the given ending.
    /// Throws if the pattern built from the arguments does not compile.
    private func isTunnelLine(_ line: String, target: String, traffic: String, ending: String) throws -> Bool {
        let pattern = "tlsctl: 127\\.0\\.0\\.1:[0-9]+ -> \(NSRegularExpression.escapedPattern(for: target)): "
            + "TLSv1\\.3 TLS_[A-Z0-9_]+, \(traffic), \(NSRegularExpression.escapedPattern(for: ending))"
        return line.wholeMatch(of: try Regex(pattern)) != nil
    }

    @Test("serve --forward in front of http.server: curl --cacert gets the backend's exact page", arguments: allBackends)
    func curlThroughForward(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (http, httpPort) = try self.backend(Self.httpBackend)
        defer { http.stop() }
        let server = try forwardingServer(backend, files, to: httpPort)
        defer { server.child.stop() }
        #expect(server.child.output.contains("forwarding to 127.0.0.1:\(httpPort)\n"))
        let (status, response, errors) = try run(try tool("curl"), [
            "--silent", "--show-error", "--include", "--cacert", files.cert,
            "--resolve", "localhost:\(server.port):127.0.0.1", "https://localhost:\(server.port)/through/the/proxy",
        ])
        #expect(status == 0, "\(errors)")
        let body = "hello from the backend: /through/the/proxy\n"
        #expect(response.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(response)")
        #expect(response.hasSuffix("\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body), "\(response)")
        #expect(server.child.wait(timeout: 30) == 0)
        let log = lines(server.child.errorOutput)
        try #require(log.count == 1, "\(server.child.errorOutput)")
        // Every byte of the response went down; the request went up (its size is curl's).
        #expect(try isTunnelLine(log[0], target: "127.0.0.1:\(httpPort)",
                             traffic: "[1-9][0-9]* bytes up, \(response.utf8.count) bytes down", ending: "closed cleanly"),
                "\(log)")
    }

    @Test("serve --forward: 5 MiB up and the same 5 MiB down through curl and http.server, byte for byte",
          arguments: allBackends)
    func largeTransferThroughForward(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (http, httpPort) = try self.backend(Self.httpBackend)
        defer { http.stop() }
        let server = try forwardingServer(backend, files, to: httpPort)
        defer { server.child.stop() }
        var generator = SystemRandomNumberGenerator()
        let upload = (0..<(5 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let uploadPath = files.directory.appendingPathComponent("upload.bin").path
        let downloadPath = files.directory.appendingPathComponent("download.bin").path
        try Data(upload).write(to: URL(fileURLWithPath: uploadPath))
        let (status, _, errors) = try run(try tool("curl"), [
            "--silent", "--show-error", "--cacert", files.cert, "--resolve", "localhost:\(server.port):127.0.0.1",
            "--data-binary", "@\(uploadPath)", "--output", downloadPath, "https://localhost:\(server.port)/echo",
        ], timeout: 120)
        #expect(status == 0, "\(errors)")
        let download = try Data(contentsOf: URL(fileURLWithPath: downloadPath))
        #expect(download.count == upload.count)
        #expect(download == Data(upload), "the 5 MiB came back changed")
        #expect(server.child.wait(timeout: 60) == 0)
        try expectOneTunnelLine(server.child, target: "127.0.0.1:\(httpPort)", traffic: "52[0-9]{5} bytes up, 52[0-9]{5} bytes down", ending: "closed cleanly")
    }

    @Test("serve --forward to an echo backend: 5 MiB streamed both ways at once (back-pressure), exact bytes and counts",
          arguments: allBackends)
    func streamingEchoThroughForward(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (echo, echoPort) = try self.backend(Self.streamBackend, ["echo"])
        defer { echo.stop() }
        let server = try forwardingServer(backend, files, to: echoPort)
        defer { server.child.stop() }
        // Printable, so stdin and stdout compare as text; no line structure to lean on.
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789\n".utf8)
        var generator = SystemRandomNumberGenerator()
        let size = 5 << 20
        let input = String(decoding: (0..<size).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", files.cert,
            "--server-name", "localhost", "--quiet",
        ], input: input, timeout: 120)
        #expect(status == 0, "\(errors)")
        #expect(output.utf8.count == size)
        #expect(output == input, "the echoed stream differs")
        #expect(server.child.wait(timeout: 60) == 0)
        try expectOneTunnelLine(server.child, target: "127.0.0.1:\(echoPort)", traffic: "\(size) bytes up, \(size) bytes down", ending: "closed cleanly")
    }

    @Test("serve --forward keeps half-close: gnutls-cli's close_notify ends the backend's input, the reply still arrives",
          arguments: allBackends)
    func halfCloseThroughForward(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (counter, counterPort) = try self.backend(Self.streamBackend, ["count"])
        defer { counter.stop() }
        let server = try forwardingServer(backend, files, to: counterPort)
        defer { server.child.stop() }
        // gnutls-cli sends close_notify at the end of its stdin and reads on; the backend
        // answers only once its input has ended, so the reply proves both halves.
        let (status, output, errors) = try run(try tool("gnutls-cli"), [
            "127.0.0.1", "--port", "\(server.port)", "--x509cafile", files.cert,
            "--sni-hostname", "localhost", "--verify-hostname", "localhost",
        ], input: "twelve bytes")
        #expect(status == 0, "\(errors)")
        #expect(output.contains("\nreceived 12 bytes\n- Peer has closed the GnuTLS connection\n"), "\(output)")
        #expect(server.child.wait(timeout: 30) == 0)
        try expectOneTunnelLine(server.child, target: "127.0.0.1:\(counterPort)", traffic: "12 bytes up, 18 bytes down", ending: "closed cleanly")
    }

    @Test("serve --forward to a refusing backend: curl gets close_notify and no data, the log names ECONNREFUSED",
          arguments: allBackends)
    func refusedBackend(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (refusing, refusingPort) = try refusingPort()
        defer { close(refusing) }
        let server = try forwardingServer(backend, files, to: refusingPort)
        defer { server.child.stop() }
        let (status, output, errors) = try run(try tool("curl"), [
            "--silent", "--show-error", "--cacert", files.cert, "--resolve", "localhost:\(server.port):127.0.0.1",
            "https://localhost:\(server.port)/",
        ])
        #expect(status == 52, "\(errors)")  // CURLE_GOT_NOTHING: a clean end, no response
        #expect(errors == "curl: (52) Empty reply from server\n", "\(errors)")
        #expect(output.isEmpty)
        #expect(server.child.wait(timeout: 30) == 0)
        let log = lines(server.child.errorOutput)
        try #require(log.count == 1, "\(log)")
        #expect(try isTunnelLine(log[0], target: "127.0.0.1:\(refusingPort)", traffic: "0 bytes up, 0 bytes down",
                                 ending: "backend connect failed: Connection refused (ECONNREFUSED)"),
                "\(log)")
    }

    @Test("serve --forward --verify-client required: curl with a client certificate passes, without one is refused",
          arguments: allBackends)
    func mutualTLSForward(backend: Backend) throws {
        let serverFiles = try CertificateFiles(backend)
        defer { serverFiles.remove() }
        let clientFiles = try CertificateFiles(backend, name: "client", names: ["client.example"])
        defer { clientFiles.remove() }
        let (http, httpPort) = try self.backend(Self.httpBackend)
        defer { http.stop() }
        let server = try Server(["--backend", backend.name, "--cert", serverFiles.cert, "--key", serverFiles.key,
                                 "--ca-file", clientFiles.cert, "--verify-client", "required",
                                 "--forward", "127.0.0.1:\(httpPort)", "--max-connections", "2"])
        defer { server.child.stop() }
        let common = ["--silent", "--show-error", "--cacert", serverFiles.cert,
                      "--resolve", "localhost:\(server.port):127.0.0.1"]
        let (status, page, errors) = try run(try tool("curl"), common + [
            "--cert", clientFiles.cert, "--key", clientFiles.key, "https://localhost:\(server.port)/mtls",
        ])
        #expect(status == 0, "\(errors)")
        #expect(page == "hello from the backend: /mtls\n")
        let (refusedStatus, refusedPage, _) = try run(try tool("curl"), common + ["https://localhost:\(server.port)/anonymous"])
        #expect(refusedStatus != 0)
        #expect(refusedPage.isEmpty)
        #expect(server.child.wait(timeout: 30) == 0)
        let log = lines(server.child.errorOutput)
        try #require(log.count == 2, "\(log)")
        #expect(try isTunnelLine(log[0], target: "127.0.0.1:\(httpPort)", traffic: "[0-9]+ bytes up, [0-9]+ bytes down",
                                 ending: "closed cleanly"), "\(log)")
        #expect(log[1].contains(" -> 127.0.0.1:\(httpPort): handshake failed: certificate verification failed: noCertificate (\(backend.name): "),
                "\(log)")
    }

    @Test("connect --listen to openssl s_server -rev: a plain TCP client half-closes and gets the exact reply",
          arguments: allBackends)
    func listenToReversingServer(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (server, serverPort) = try openSSLServer(files, "-rev")
        defer { server.stop() }
        // The address, not the name: what "localhost" resolves to is the machine's
        // /etc/hosts, not the test's. The certificate is checked against the name.
        let (tunnel, port) = try listener(["127.0.0.1:\(serverPort)", "--backend", backend.name, "--ca-file", files.cert,
                                           "--server-name", "localhost", "--max-connections", "1"])
        defer { tunnel.stop() }
        #expect(tunnel.output.hasPrefix("tunnelling to 127.0.0.1:\(serverPort) with \(backend.name) "), "\(tunnel.output)")
        let (status, output, errors) = try run(try tool("python3"), ["-c", Self.halfClosingClient, "\(port)", "hello\nworld\n"])
        #expect(status == 0, "\(errors)")
        #expect(output == "olleh\ndlrow\n")
        #expect(tunnel.wait(timeout: 30) == 0)
        try expectOneTunnelLine(tunnel, target: "127.0.0.1:\(serverPort)", traffic: "12 bytes up, 12 bytes down", ending: "closed cleanly")
    }

    @Test("connect --listen to openssl s_server -www: curl http:// gets the server's page over the tunnel",
          arguments: allBackends)
    func listenToWebServer(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (server, serverPort) = try openSSLServer(files, "-www")
        defer { server.stop() }
        let (tunnel, port) = try listener(["127.0.0.1:\(serverPort)", "--backend", backend.name, "--ca-file", files.cert,
                                           "--server-name", "localhost", "--max-connections", "1"])
        defer { tunnel.stop() }
        let (status, page, errors) = try run(try tool("curl"), ["--silent", "--show-error", "--include",
                                                                "http://127.0.0.1:\(port)/"])
        #expect(status == 0, "\(errors)")
        #expect(page.hasPrefix("HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n<HTML><BODY BGCOLOR=\"#ffffff\">\n<pre>\n"),
                "\(page)")
        #expect(page.contains("\nNew, TLSv1.3, Cipher is TLS_"), "\(page)")
        #expect(page.hasSuffix("</pre></BODY></HTML>\r\n\r\n"), "\(page)")
        #expect(tunnel.wait(timeout: 30) == 0)
        try expectOneTunnelLine(tunnel, target: "127.0.0.1:\(serverPort)", traffic: "[0-9]+ bytes up, \(page.utf8.count) bytes down", ending: "closed cleanly")
    }

    @Test("connect --listen to a server whose certificate names another host: the local client is reset, the log says why",
          arguments: allBackends)
    func listenVerificationFailure(backend: Backend) throws {
        let files = try CertificateFiles(backend, names: ["other.example"])
        defer { files.remove() }
        let (server, serverPort) = try openSSLServer(files, "-rev")
        defer { server.stop() }
        let (tunnel, port) = try listener(["127.0.0.1:\(serverPort)", "--backend", backend.name, "--ca-file", files.cert,
                                           "--server-name", "localhost", "--max-connections", "1"])
        defer { tunnel.stop() }
        let (status, output, errors) = try run(try tool("python3"), ["-c", Self.halfClosingClient, "\(port)", "secret\n"])
        #expect(status == 0, "\(errors)")
        #expect(output == "RESET", "nothing of the server's reaches the client, and it cannot take the end for a clean one")
        #expect(tunnel.wait(timeout: 30) == 0)
        let log = lines(tunnel.errorOutput)
        try #require(log.count == 1, "\(log)")
        #expect(log[0].hasPrefix("tlsctl: 127.0.0.1:"), "\(log)")
        #expect(log[0].contains(" -> 127.0.0.1:\(serverPort): handshake failed: certificate verification failed: hostnameMismatch (\(backend.name): "),
                "\(log)")
    }
}
