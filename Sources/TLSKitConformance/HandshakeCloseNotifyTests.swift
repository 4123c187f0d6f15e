import Foundation
import Testing
import TLSCore

/// A close_notify the peer sends protected, in the middle of the handshake: TLS 1.3
/// after the ServerHello, the contract's "peer sends close_notify during the handshake"
/// row, 0 `.zeroReturn` and sticky; TLS 1.2 right after ChangeCipherSpec, where only
/// the Finished may come (RFC 5246 §7.1), -1 `.ssl` `protocolFailure` and
/// unexpected_message. On every backend, from either side. The records are encrypted here, with the secrets the victim's
/// own key log gives (`python3` with its `cryptography` package): the cases need the
/// `.keyLogging` and `.cipherSuiteSelection` capabilities (AES-128-GCM is chosen).
enum HandshakeCloseNotifyTests {
    /// This file's rules, in order.
    static let rules: [ConformanceRule] = HostileInputTests.expand(
        "encryptedCloseNotifyDuringHandshake",
        "an encrypted close_notify in the middle of the handshake: 0 .zeroReturn, sticky, nothing sent back (TLS 1.3); unexpected_message (TLS 1.2)",
        requires: [.keyLogging, .cipherSuiteSelection]) { try $0.encryptedCloseNotifyDuringHandshake(c: $1) }
}

extension HostileInputTests {
    /// One AES-128-GCM record, sequence 0, of `type` around `plaintext`: TLS 1.3 under
    /// the traffic secret `secret` (with `padding` zero bytes after the inner type);
    /// TLS 1.2 under the key block of `secret` (the master
    /// secret) and the two randoms, as the client (`client`) or the server writes it.
    static func encryptRecord(tls13: Bool, secret: String, randoms: (client: [UInt8], server: [UInt8]) = ([], []),
                              client: Bool, type: UInt8, plaintext: [UInt8], padding: Int = 0) throws -> [UInt8] {
        let script = """
            import sys, binascii, hmac, hashlib
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            tls13, secret, crandom, srandom, client, ctype, plain = sys.argv[1] == "1", binascii.unhexlify(sys.argv[2]), \\
                binascii.unhexlify(sys.argv[3]), binascii.unhexlify(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6]), \\
                binascii.unhexlify(sys.argv[7])
            padding = int(sys.argv[8])
            if tls13:
                def label(l, n):
                    full = b"tls13 " + l
                    info = n.to_bytes(2, "big") + bytes([len(full)]) + full + b"\\x00"
                    return HKDFExpand(hashes.SHA256(), n, info).derive(secret)
                key, iv = label(b"key", 16), label(b"iv", 12)
                inner = plain + bytes([ctype]) + bytes(padding)
                header = bytes([23, 3, 3, (len(inner) + 16) >> 8, (len(inner) + 16) & 0xFF])
                out = header + AESGCM(key).encrypt(iv, inner, header)
            else:
                def prf(label, seed, n):
                    out, a = b"", label + seed
                    while len(out) < n:
                        a = hmac.new(secret, a, hashlib.sha256).digest()
                        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
                    return out[:n]
                block = prf(b"key expansion", srandom + crandom, 40)
                key, salt = (block[0:16], block[32:36]) if client else (block[16:32], block[36:40])
                explicit = bytes(8)
                aad = bytes(8) + bytes([ctype, 3, 3, len(plain) >> 8, len(plain) & 0xFF])
                body = explicit + AESGCM(key).encrypt(salt + explicit, plain, aad)
                out = bytes([ctype, 3, 3, len(body) >> 8, len(body) & 0xFF]) + body
            sys.stdout.write(binascii.hexlify(out).decode())
            """
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try runTool(try tool("python3"), ["-c", script, tls13 ? "1" : "0", secret, hex(randoms.client),
                                                    hex(randoms.server), client ? "1" : "0", "\(type)", hex(plaintext),
                                                    "\(padding)"], in: directory)
        guard run.status == 0 else {
            throw TLSError(.internalError, "encryption failed (python3 with the cryptography package): \(run.errorOutput)",
                           backend: "conformance")
        }
        let text = Array(run.output.utf8)
        return stride(from: 0, to: text.count - 1, by: 2).map { UInt8(String(decoding: text[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
    }

    /// The 32-byte random of the hello message at the start of `flight`.
    static func helloRandom(_ flight: [UInt8]) -> [UInt8] { Array(flight[11..<43]) }

    func encryptedCloseNotifyDuringHandshake(c: Case) throws {
        let lines = Locked<[String]>([])
        let logger = TLSKeyLogger { line in lines.withLock { $0.append(line) } }
        let suite = c.version == .tls13 ? "TLS_AES_128_GCM_SHA256" : "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        let link = try MemoryLink(Fixture(c.backend),
                                  client: { $0.minimumTLSVersion = c.version; $0.maximumTLSVersion = c.version
                                            $0.cipherSuites = [suite]; $0.keyLogger = logger },
                                  server: { $0.minimumTLSVersion = c.version; $0.maximumTLSVersion = c.version
                                            $0.keyLogger = logger; $0.sessionTicketsEnabled = false })
        #expect(Self.handshake(link.client) == Step(-1, .wantRead))
        let clientHello = link.clientWire.takeOutgoing()
        link.serverWire.deliverIncoming(clientHello)
        #expect(Self.handshake(link.server) == Step(-1, .wantRead))
        let serverFlight = link.serverWire.takeOutgoing()
        let randoms = (client: Self.helloRandom(clientHello), server: Self.helloRandom(serverFlight))
        func secret(_ label: String) throws -> String {
            try #require(lines.withLock { $0 }.first { $0.hasPrefix(label + " ") }.map { String($0.split(separator: " ")[2]) },
                         "\(label) in \(lines.withLock { $0 })")
        }
        let closeNotify: [UInt8] = [1, 0]
        let victim: TLSConnection, wire: TLSMemoryPair
        if c.role == .client {
            // The server's ServerHello (TLS 1.2: with the rest of its flight in clear) reaches the client …
            (victim, wire) = (link.client, link.clientWire)
            if c.version == .tls13 {
                wire.deliverIncoming(Wire.firstRecord(serverFlight))
                #expect(Self.handshake(victim) == Step(-1, .wantRead))
                // What it sends now is its own (GnuTLS: its compatibility ChangeCipherSpec).
                #expect(Wire.recordTypes(wire.takeOutgoing()).allSatisfy { $0 == 20 })
                // … then, in place of its encrypted extensions, an encrypted close_notify.
                wire.deliverIncoming(try Self.encryptRecord(tls13: true, secret: try secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"),
                                                            client: false, type: 21, plaintext: closeNotify))
            } else {
                wire.deliverIncoming(serverFlight)
                #expect(Self.handshake(victim) == Step(-1, .wantRead))  // sent its key exchange, CCS, Finished
                _ = wire.takeOutgoing()
                // The server's ChangeCipherSpec, then a close_notify where its Finished goes.
                wire.deliverIncoming([20, 3, 3, 0, 1, 1] + (try Self.encryptRecord(
                    tls13: false, secret: try secret("CLIENT_RANDOM"), randoms: randoms, client: false, type: 21,
                    plaintext: closeNotify)))
            }
        } else {
            (victim, wire) = (link.server, link.serverWire)
            link.clientWire.deliverIncoming(serverFlight)
            let clientStep = Self.handshake(link.client)
            #expect(clientStep == Step(c.version == .tls13 ? 1 : -1, c.version == .tls13 ? .none : .wantRead))
            let clientFlight = link.clientWire.takeOutgoing()
            if c.version == .tls13 {
                // Its Finished replaced: a ChangeCipherSpec (middlebox compatibility), then
                // an encrypted close_notify.
                wire.deliverIncoming([20, 3, 3, 0, 1, 1] + (try Self.encryptRecord(
                    tls13: true, secret: try secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), client: true, type: 21,
                    plaintext: closeNotify)))
            } else {
                // Its key exchange and ChangeCipherSpec as sent, then a close_notify where
                // its Finished goes.
                var index = 0, kept: [UInt8] = []
                while index + 5 <= clientFlight.count {
                    let end = index + 5 + (Int(clientFlight[index + 3]) << 8 | Int(clientFlight[index + 4]))
                    kept += clientFlight[index..<end]
                    if clientFlight[index] == 20 { break }
                    index = end
                }
                #expect(Wire.recordTypes(kept) == [22, 20])
                wire.deliverIncoming(kept + (try Self.encryptRecord(
                    tls13: false, secret: try secret("CLIENT_RANDOM"), randoms: randoms, client: true, type: 21,
                    plaintext: closeNotify)))
            }
        }
        let step = Self.handshake(victim)
        if c.version == .tls13 {
            #expect(step == Step(0, .zeroReturn), "\(String(describing: victim.lastError))")
            #expect(Self.handshake(victim) == Step(0, .zeroReturn))
            #expect(wire.takeOutgoing().isEmpty)
        } else {
            #expect(step == Step(-1, .ssl))
            #expect(victim.lastError?.code == .protocolFailure, "\(String(describing: victim.lastError))")
            #expect(victim.lastError?.alert == .unexpectedMessage, "\(String(describing: victim.lastError))")
            // The alert: plaintext from the server (it has not sent its ChangeCipherSpec),
            // protected from the client (8-byte explicit nonce, 2 bytes, 16-byte tag).
            let answer = wire.takeOutgoing()
            if c.role == .server {
                #expect(answer == Wire.alertRecord(.unexpectedMessage))
            } else {
                #expect(Array(answer.prefix(5)) == [21, 3, 3, 0, 26] && answer.count == 31, "\(answer)")
            }
            #expect(Self.handshake(victim) == Step(-1, .ssl))
        }
        #expect(victim.isHandshakeComplete == false)
    }
}
