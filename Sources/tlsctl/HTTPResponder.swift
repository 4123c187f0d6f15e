import Foundation
import TLSKit

/// The `--http` mode of `tlsctl serve`: answers each HTTP/1.x request with a small
/// text page naming the backend and the parameters the handshake negotiated.
enum HTTPResponder {
    /// The longest request head accepted (request line and header fields, with their
    /// line ends). A head that has not ended within this many bytes gets 400 and the
    /// connection is closed: the client cannot make the server buffer without bound.
    static let maximumHead = 16 * 1024

    /// Where a request head stands in the bytes received so far.
    enum HeadScan: Equatable {
        /// No empty line yet, and still within ``maximumHead``: wait for more bytes.
        case incomplete
        /// No empty line within the first ``maximumHead`` bytes.
        case tooLarge
        /// The head's lines (without their line ends), and how many bytes it took,
        /// its empty last line and any empty lines before the request line included.
        case complete(lines: [String], length: Int)
    }

    /// Splits a request head into lines. A line ends with CRLF or with a bare LF (RFC
    /// 9112 §2.2: a recipient may take a single LF as a line terminator and ignore a
    /// preceding CR); empty lines before the request line are skipped (§2.2 again).
    static func scanHead(_ bytes: [UInt8], limit: Int = maximumHead) -> HeadScan {
        var lines: [String] = []
        var start = 0
        while let newline = bytes[start...].firstIndex(of: 10) {
            if newline + 1 > limit { return .tooLarge }
            var end = newline
            if end > start && bytes[end - 1] == 13 { end -= 1 }
            if end == start {
                if !lines.isEmpty { return .complete(lines: lines, length: newline + 1) }
            } else {
                lines.append(String(decoding: bytes[start..<end], as: UTF8.self))
            }
            start = newline + 1
        }
        return bytes.count >= limit ? .tooLarge : .incomplete
    }

    /// Consumes every complete request in `inbox` and returns the responses, and
    /// whether the connection must close after them.
    static func respond(to inbox: inout [UInt8], connection: TLSConnection,
                        backend: any TLSBackend.Type) -> (responses: [UInt8], close: Bool) {
        var output: [UInt8] = []
        for _ in 0..<100 {  // bounded: a pipelined batch, the rest waits for the next read
            let lines: [String]
            let headLength: Int
            switch scanHead(inbox) {
            case .incomplete:
                return (output, false)
            case .tooLarge:
                output += response(status: "400 Bad Request",
                                   body: "request head not ended within \(maximumHead) bytes\n", close: true, head: false)
                inbox.removeAll()
                return (output, true)
            case .complete(let headLines, let length):
                lines = headLines
                headLength = length
            }
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
            let total = headLength + bodyLength
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
}
