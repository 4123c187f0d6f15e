import Foundation
import TLSKit

/// The `--http` mode of `tlsctl serve`: answers each HTTP/1.x request with a small
/// text page naming the backend and the parameters the handshake negotiated.
enum HTTPResponder {
    /// Request heads larger than this are refused with 431 and the connection closed.
    static let maximumHead = 16 * 1024

    /// Consumes every complete request in `inbox` and returns the responses, and
    /// whether the connection must close after them.
    static func respond(to inbox: inout [UInt8], connection: TLSConnection,
                        backend: any TLSBackend.Type) -> (responses: [UInt8], close: Bool) {
        var output: [UInt8] = []
        for _ in 0..<100 {  // bounded: a pipelined batch, the rest waits for the next read
            guard let headEnd = find([13, 10, 13, 10], in: inbox) else {
                if inbox.count > maximumHead {
                    output += response(status: "431 Request Header Fields Too Large",
                                       body: "request head larger than \(maximumHead) bytes\n", close: true, head: false)
                    inbox.removeAll()
                    return (output, true)
                }
                return (output, false)
            }
            let head = String(decoding: inbox[0..<headEnd], as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let requestLine = lines[0].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
                output += response(status: "400 Bad Request", body: "not an HTTP/1.x request line: \(lines[0].prefix(100))\n",
                                   close: true, head: false)
                inbox.removeAll()
                return (output, true)
            }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let bodyLength = Int(headers["content-length"] ?? "0") ?? -1
            guard bodyLength >= 0, bodyLength <= 1 << 20, headers["transfer-encoding"] == nil else {
                output += response(status: "400 Bad Request", body: "request bodies need a Content-Length up to 1 MiB\n",
                                   close: true, head: false)
                inbox.removeAll()
                return (output, true)
            }
            let total = headEnd + 4 + bodyLength
            if inbox.count < total { return (output, false) }  // the body has not all arrived
            inbox.removeFirst(total)

            let connectionHeader = headers["connection"]?.lowercased() ?? ""
            let close = requestLine[2] == "HTTP/1.0" ? !connectionHeader.contains("keep-alive")
                                                     : connectionHeader.contains("close")
            let body = page(method: requestLine[0], target: requestLine[1], version: requestLine[2],
                            connection: connection, backend: backend)
            output += response(status: "200 OK", body: body, close: close, head: requestLine[0] == "HEAD")
            if close { return (output, true) }
        }
        return (output, false)
    }

    /// The page: what the server saw of this connection.
    static func page(method: String, target: String, version: String, connection: TLSConnection,
                     backend: any TLSBackend.Type) -> String {
        var lines = ["Hello from tlsctl serve, over TLSKit."]
        lines.append("backend:       \(backend.id) (\(backend.libraryVersion))")
        lines.append("protocol:      \(connection.negotiatedVersion.map { "\($0)" } ?? "?")")
        lines.append("cipher suite:  \(connection.cipherSuite ?? "?")")
        lines.append("ALPN:          \(connection.negotiatedApplicationProtocol ?? "none")")
        lines.append("SNI:           \(connection.requestedServerName ?? "none")")
        lines.append("client cert:   \(connection.peerCertificateInfo.map { "\(TLSUntrustedText.escape($0.subject)) (\(connection.peerVerification.map { "\($0)" } ?? "?"))" } ?? "none")")
        lines.append("request:       \(method) \(target.prefix(200)) \(version)")
        return lines.joined(separator: "\n") + "\n"
    }

    static func response(status: String, body: String, close: Bool, head: Bool) -> [UInt8] {
        let bodyBytes = Array(body.utf8)
        var text = "HTTP/1.1 \(status)\r\n"
        text += "Content-Type: text/plain; charset=utf-8\r\n"
        text += "Content-Length: \(bodyBytes.count)\r\n"
        text += "Server: tlsctl\r\n"
        text += close ? "Connection: close\r\n" : "Connection: keep-alive\r\n"
        text += "\r\n"
        return Array(text.utf8) + (head ? [] : bodyBytes)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return start }
        }
        return nil
    }
}
