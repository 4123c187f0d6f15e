import Foundation
import TLSKit

/// What a real TLS server (`openssl s_server`, `gnutls-serv -d 5`) says it received from
/// our client, read from its own output: the exact alert, never "some failure".
enum PeerAlertLog {
    /// One failed handshake as the server logged it.
    enum Outcome: Equatable, CustomStringConvertible {
        /// The server read this fatal alert (its wire code).
        case alert(UInt8)
        /// gnutls-serv could not decrypt the record that carried the alert ("Decryption
        /// has failed"): what it said when libssl 3.0's TLS 1.3 client sent its alert
        /// before it had handshake keys, unprotected (the OpenSSL backend now defers the
        /// verdict to those keys; Docs/backends.md). GnuTLS accepts no plaintext record then.
        case undecryptable
        /// A failed handshake with a log line this parser does not know.
        case unrecognised(String)

        var description: String {
            switch self {
            case .alert(let code): return "alert \(code) (\(TLSAlert(code)))"
            case .undecryptable: return "undecryptable record"
            case .unrecognised(let line): return "unrecognised: \(line)"
            }
        }
    }

    /// `openssl s_server`: each failed connection prints one error line ending in
    /// `SSL alert number N` when the failure was an alert from the client.
    static func openSSLOutcomes(_ server: Peer) -> [Outcome] {
        (server.errorOutput + server.output).split(separator: "\n").compactMap { line -> Outcome? in
            guard let range = line.range(of: "SSL alert number ") else { return nil }
            return UInt8(line[range.upperBound...].prefix { $0.isNumber }).map(Outcome.alert) ?? .unrecognised(String(line))
        }
    }

    /// `gnutls-serv -d 5`: a failed handshake ends with `Error in handshake: …`; an alert
    /// it read was logged before it as `REC[…]: Alert[2|N] - … - was received`.
    static func gnuTLSOutcomes(_ server: Peer) -> [Outcome] {
        var outcomes: [Outcome] = []
        var alerts: [UInt8] = []
        for line in server.errorOutput.split(separator: "\n") {
            if let range = line.range(of: "Alert[2|"), line.hasSuffix(" was received") {
                if let code = UInt8(line[range.upperBound...].prefix { $0.isNumber }) { alerts.append(code) }
            } else if line.hasPrefix("Error in handshake: ") {
                let reason = line.dropFirst("Error in handshake: ".count)
                if reason == "A TLS fatal alert has been received.", alerts.count == 1 {
                    outcomes.append(.alert(alerts[0]))
                } else if reason == "Decryption has failed.", alerts.isEmpty {
                    outcomes.append(.undecryptable)
                } else {
                    outcomes.append(.unrecognised("\(line) after alerts \(alerts)"))
                }
                alerts = []
            }
        }
        return outcomes
    }

    /// Waits (up to `timeout` seconds) until `read` gives at least `count` outcomes, and
    /// returns them: the server logs a failure after our client has already returned.
    static func wait(for count: Int, in server: Peer, timeout: TimeInterval = 10,
                     _ read: (Peer) -> [Outcome]) -> [Outcome] {
        let deadline = Date().addingTimeInterval(timeout)
        var outcomes = read(server)
        while outcomes.count < count && Date() < deadline {
            usleep(20_000)
            outcomes = read(server)
        }
        return outcomes
    }
}
