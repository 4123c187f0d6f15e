// A test double, not a backend: an engine written only against the backend SPI whose
// every call answers from a script the test writes, so that ScriptedContractTests.swift
// (and the state and capability rule tests) drive TLSConnection through every row of
// Docs/contract.md and see exactly the core's rules, with no library in the way. The
// backend that proves the SPI open — a real protocol in a package of its own, passing
// the conformance suite — is FakeTLS in Backends/Fake.
import Foundation
@_spi(TLSBackendImplementation) import TLSCore

/// The scripted provider: ALPN and SNI only, so that options needing other capabilities are refused.
enum ScriptedBackend: TLSBackend {
    static let id = TLSBackendID("Scripted")
    static let libraryVersion = "Fake 1.0 (scripted)"
    static let capabilities: TLSCapabilities = [.alpn, .serverNameIndication]

    /// The script the next `makeContext` binds to its engine (one per test task).
    @TaskLocal static var script: EngineScript?

    static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        throw TLSError(.badCertificate, "the scripted backend parses no certificates", backend: id)
    }

    static func generateSelfSignedIdentity(commonName: String, subjectAlternativeNames: [String], validityDays: Int) throws -> TLSIdentity {
        throw TLSError(.internalError, "never called: the scripted backend lacks the selfSignedIdentity capability", backend: id)
    }

    static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine {
        let script = script ?? EngineScript()
        script.contextsMade += 1
        return ScriptedContextEngine(script: script)
    }
}

/// What one scripted engine call does before it answers.
enum ScriptedReply {
    /// Answers with this status; a read's `.success(n)` fills the buffer with `n` bytes 0x61.
    case status(TLSEngineStatus)
    /// Reads the transport once (as a library would), then answers.
    case readTransport(then: TLSEngineStatus)
    /// Writes these bytes to the transport (as a library flushes a record), then answers.
    case writeTransport([UInt8], then: TLSEngineStatus)
}

/// The answers, in order, and a record of what the core asked.
///
/// `@unchecked Sendable`: a script belongs to one test and is used from its thread only
/// (the context engine must be `Sendable` to be shared; the scripted engine never shares it).
final class EngineScript: @unchecked Sendable {
    var handshake: [ScriptedReply] = []
    var read: [ScriptedReply] = []
    var write: [ScriptedReply] = []
    var closeNotify: [ScriptedReply] = []
    /// What `sendFatalAlert` answers: nil sends the alert asked for; `.some(nil)` none.
    var alertAnswer: TLSAlert?? = nil

    private(set) var calls: [String] = []
    private(set) var alertsAsked: [TLSAlert] = []
    private(set) var written: [UInt8] = []
    var contextsMade = 0
    var sessionsMade: [(role: TLSRole, serverName: String?)] = []

    var negotiatedVersion: TLSVersion? = .tls13
    var cipherSuite: String? = "TLS_AES_128_GCM_SHA256"
    var alpn: String? = "h2"

    func next(_ kind: String, _ queue: inout [ScriptedReply], transport: TLSTransportIO) -> TLSEngineStatus {
        calls.append(kind)
        guard !queue.isEmpty else {
            return .failure(TLSError(.internalError, "unscripted \(kind) call", backend: ScriptedBackend.id))
        }
        switch queue.removeFirst() {
        case .status(let status):
            return status
        case .readTransport(let status):
            var scratch = [UInt8](repeating: 0, count: 512)
            _ = scratch.withUnsafeMutableBytes { transport.read(into: $0) }
            return status
        case .writeTransport(let bytes, let status):
            _ = bytes.withUnsafeBytes { transport.write($0) }
            return status
        }
    }

    func record(written bytes: UnsafeRawBufferPointer) { written += bytes }
    func record(alert: TLSAlert) { alertsAsked.append(alert) }
}

final class ScriptedContextEngine: TLSContextEngine {
    let script: EngineScript
    init(script: EngineScript) { self.script = script }

    func makeConnectionEngine(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSConnectionEngine {
        script.sessionsMade.append((role, serverName))
        return ScriptedConnectionEngine(script: script, transport: transport)
    }

    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] { [] }
}

final class ScriptedConnectionEngine: TLSConnectionEngine {
    let script: EngineScript
    let transport: TLSTransportIO
    init(script: EngineScript, transport: TLSTransportIO) {
        self.script = script
        self.transport = transport
    }

    func handshake() -> TLSEngineStatus { script.next("handshake", &script.handshake, transport: transport) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus {
        let status = script.next("read", &script.read, transport: transport)
        if case .success(let count) = status {
            for index in 0..<min(count, buffer.count) { buffer[index] = 0x61 }
        }
        return status
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus {
        let status = script.next("write", &script.write, transport: transport)
        if case .success(let count) = status { script.record(written: UnsafeRawBufferPointer(rebasing: bytes.prefix(count))) }
        return status
    }

    func sendCloseNotify() -> TLSEngineStatus { script.next("closeNotify", &script.closeNotify, transport: transport) }

    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert? {
        script.record(alert: alert)
        return script.alertAnswer ?? alert
    }

    var negotiatedVersion: TLSVersion? { script.negotiatedVersion }
    var cipherSuite: String? { script.cipherSuite }
    var negotiatedApplicationProtocol: String? { script.alpn }
    var peerCertificateChain: [[UInt8]] { [] }
    var requestedServerName: String? { nil }
}
