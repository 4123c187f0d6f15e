// One FakeTLS connection: the handshake state machine, the record layer and alerts.
// (One file of 400+ lines on purpose: the protocol, like a TLS library's, is one state
// machine over private buffers; its byte reader is the small type at the end.)
//
// The flights follow TLS's (every handshake message has TLS's 4-byte header; see
// FakeTLSBackend.swift for what is fake):
//   TLS 1.3 shape                                   TLS 1.2 shape (a full handshake)
//   C: ClientHello                                  C: ClientHello
//   S: ServerHello                                  S: ServerHello (ALPN), Certificate,
//      {EncryptedExtensions (ALPN),                    [CertificateRequest], ServerHelloDone
//       [CertificateRequest], Certificate, Finished} C: [Certificate], ChangeCipherSpec, {Finished}
//   C: {[Certificate], Finished}                    S: ChangeCipherSpec, {Finished}
// where {…} is "protected": TLS 1.3 shape, an application_data record whose content ends
// with the inner content type and a 16-byte all-zero tag; TLS 1.2 shape, a record of
// the real type whose content ends with a 32-byte all-zero "MAC". A tag or MAC that is
// not all zeros is bad_record_mac, so a flipped protected byte there is caught.
@_spi(TLSBackendImplementation) import TLSCore

final class FakeTLSConnectionEngine: TLSConnectionEngine {
    private enum Stage {
        case start
        case waitServerHello
        case waitServerFlight
        /// TLS 1.2 shape: the client's flight is sent; the server's Finished comes last.
        case waitServerFinished
        case waitClientHello
        case waitClientFlight
        /// The last flight is queued; done once it is written.
        case finishing
        case established
    }

    private enum Content: UInt8 {
        case changeCipherSpec = 20, alert = 21, handshake = 22, applicationData = 23
    }

    private enum Message: UInt8 {
        case clientHello = 1, serverHello = 2, encryptedExtensions = 8, certificate = 11
        case certificateRequest = 13, serverHelloDone = 14, finished = 20
    }

    static let cipherSuite = "FAKETLS_NULL_NO_PROTECTION"
    private static let maxPlaintext = 16_384
    private static let tag13 = 16
    private static let mac12 = 32

    private let context: FakeTLSContextEngine
    private let role: TLSRole
    private let transport: TLSTransportIO
    private let serverName: String?
    private var stage = Stage.start
    private var version: TLSVersion?
    /// Our records are protected from now on.
    private var sendProtected = false
    /// The peer's records are protected from now on.
    private var receiveProtected = false

    private var outbound: [UInt8] = []
    private var inbound: [UInt8] = []
    private var handshakeBytes: [UInt8] = []
    private var plaintext: [UInt8] = []
    /// A write whose record is queued but not yet on the transport: its byte count.
    private var pendingWrite: Int?
    private var sentAlert: TLSAlert?
    private var clientAskedForCertificate = false
    private var offeredProtocols: [String]?

    private(set) var negotiatedApplicationProtocol: String?
    private(set) var peerCertificateChain: [[UInt8]] = []
    private(set) var requestedServerName: String?

    init(context: FakeTLSContextEngine, role: TLSRole, transport: TLSTransportIO, serverName: String?) {
        self.context = context
        self.role = role
        self.transport = transport
        self.serverName = serverName
    }

    var negotiatedVersion: TLSVersion? { stage == .established ? version : nil }
    var cipherSuite: String? { stage == .established ? Self.cipherSuite : nil }
    var localCertificate: [UInt8]? { context.chain.first }
    private var configuration: TLSConfiguration { context.configuration }

    // MARK: - The calls

    func handshake() -> TLSEngineStatus {
        do {
            while true {
                switch stage {
                case .start:
                    if role == .client {
                        queue(.handshake, message(.clientHello, clientHello()))
                        stage = .waitServerHello
                    } else {
                        stage = .waitClientHello
                    }
                case .finishing:
                    if let status = flush() { return status }
                    stage = .established
                case .established:
                    return .success(1)
                case .waitServerHello, .waitServerFlight, .waitServerFinished, .waitClientHello, .waitClientFlight:
                    if let status = flush() { return status }
                    if let (type, body) = try nextHandshakeMessage() {
                        try handle(type, body)
                    } else if let status = try readRecord() {
                        return status
                    }
                }
            }
        } catch let failure as Failure {
            return fail(failure)
        } catch {
            return .failure(TLSError(.internalError, "\(error)", backend: FakeTLSBackend.id))
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus {
        do {
            while plaintext.isEmpty {
                if let status = flush() { return status }
                if let status = try readRecord() { return status }
                if !handshakeBytes.isEmpty {
                    throw Failure(error: error(.protocolFailure, "a handshake message after the handshake"), alert: .unexpectedMessage)
                }
            }
            let count = min(buffer.count, plaintext.count)
            plaintext.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            plaintext.removeFirst(count)
            return .success(count)
        } catch let failure as Failure {
            return fail(failure)
        } catch {
            return .failure(TLSError(.internalError, "\(error)", backend: FakeTLSBackend.id))
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus {
        if pendingWrite == nil {
            let count = min(bytes.count, Self.maxPlaintext)
            queue(.applicationData, Array(bytes.prefix(count)))
            pendingWrite = count
        }
        if let status = flush() { return status }
        defer { pendingWrite = nil }
        return .success(pendingWrite!)
    }

    func sendCloseNotify() -> TLSEngineStatus {
        if sentAlert == nil {
            queue(.alert, [1, TLSAlert.closeNotify.rawValue])
            sentAlert = .closeNotify
        }
        return flush() ?? .success(1)
    }

    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert? {
        if let sentAlert, sentAlert != .closeNotify { return sentAlert }
        queue(.alert, [2, alert.rawValue])
        sentAlert = alert
        _ = flush()
        return outbound.isEmpty ? alert : nil
    }

    // MARK: - Handshake messages

    private func handle(_ type: UInt8, _ body: [UInt8]) throws {
        switch (stage, Message(rawValue: type)) {
        case (.waitClientHello, .clientHello):
            try serverAnswer(body)
        case (.waitServerHello, .serverHello):
            try readServerHello(body)
        case (.waitServerFlight, .encryptedExtensions):
            var reader = Reader(body)
            let extensions = try reader.extensions()
            try readSelectedProtocol(extensions)
        case (.waitServerFlight, .certificateRequest):
            clientAskedForCertificate = true
        case (.waitServerFlight, .certificate), (.waitClientFlight, .certificate):
            var reader = Reader(body)
            peerCertificateChain = try reader.certificateList()
            try verifyPeer()
        case (.waitServerFlight, .finished) where version == .tls13, (.waitServerFlight, .serverHelloDone) where version == .tls12:
            guard !peerCertificateChain.isEmpty || configuration.certificateVerification == .insecureNoVerification else {
                throw Failure(error: error(.protocolFailure, "the server ended its flight without a Certificate"),
                              alert: .unexpectedMessage)
            }
            if clientAskedForCertificate { queue(.handshake, message(.certificate, certificateList(context.chain))) }
            if version == .tls12 { queue(.changeCipherSpec, [1]) }
            sendProtected = true
            queue(.handshake, message(.finished, [UInt8](repeating: 0, count: 12)))
            stage = version == .tls12 ? .waitServerFinished : .finishing
        case (.waitServerFinished, .finished) where receiveProtected:
            stage = .established
        case (.waitClientFlight, .finished) where receiveProtected:
            if peerCertificateChain.isEmpty && configuration.clientAuthentication == .required {
                throw Failure(error: TLSError(.certificateVerificationFailed, "the client sent no certificate", backend: FakeTLSBackend.id,
                                              verificationFailure: .noCertificate),
                              alert: TLSAlert.certificateRequired.inVersion(version ?? .tls13))
            }
            if version == .tls12 {
                queue(.changeCipherSpec, [1])
                sendProtected = true
                queue(.handshake, message(.finished, [UInt8](repeating: 0, count: 12)))
                stage = .finishing
            } else {
                stage = .established
            }
        default:
            throw Failure(error: error(.protocolFailure, "unexpected handshake message type \(type)"), alert: .unexpectedMessage)
        }
    }

    private func clientHello() -> [UInt8] {
        var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 0x11, count: 32) + [0]
        body += [0, 2, 0x13, 0x01, 1, 0]
        var extensions: [UInt8] = []
        let versions = TLSVersion.allCases.filter { $0 >= configuration.minimumTLSVersion && $0 <= configuration.maximumTLSVersion }
            .reversed().flatMap { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)] }
        extensions += Self.extensionBlock(43, [UInt8(versions.count)] + versions)
        if let serverName, !TLSHostName.isIPAddress(serverName) {
            let name = Array(serverName.utf8)
            extensions += Self.extensionBlock(0, Self.u16(name.count + 3) + [0] + Self.u16(name.count) + name)
        }
        if !configuration.applicationProtocols.isEmpty {
            offeredProtocols = configuration.applicationProtocols
            extensions += Self.extensionBlock(16, Self.protocolList(configuration.applicationProtocols))
        }
        return body + Self.u16(extensions.count) + extensions
    }

    private func serverAnswer(_ body: [UInt8]) throws {
        var reader = Reader(body)
        _ = try reader.bytes(2 + 32)
        _ = try reader.bytes(Int(try reader.u8()))
        _ = try reader.bytes(Int(try reader.u16()))
        _ = try reader.bytes(Int(try reader.u8()))
        let extensions = try reader.extensions()
        var offered: [TLSVersion] = [.tls12]
        if let data = extensions[43] {
            var inner = Reader(data)
            var list = Reader(try inner.bytes(Int(try inner.u8())))
            offered = []
            while !list.isAtEnd { if let v = TLSVersion(rawValue: Int(try list.u16())) { offered.append(v) } }
        }
        guard let chosen = offered.filter({ $0 >= configuration.minimumTLSVersion && $0 <= configuration.maximumTLSVersion }).max() else {
            throw Failure(error: error(.protocolFailure, "no protocol version in common with the client"), alert: .protocolVersion)
        }
        version = chosen
        if let data = extensions[0] {
            var inner = Reader(data)
            var list = Reader(try inner.bytes(Int(try inner.u16())))
            _ = try list.u8()
            requestedServerName = String(decoding: try list.bytes(Int(try list.u16())), as: UTF8.self)
        }
        var selected: String?
        if let data = extensions[16] {
            var inner = Reader(data)
            let names = try inner.protocolNames()
            if let selector = configuration.applicationProtocolSelector {
                selected = selector.select(names)
            } else {
                selected = configuration.applicationProtocols.first { names.contains($0) }
            }
            if selected == nil && !configuration.applicationProtocols.isEmpty {
                throw Failure(error: error(.protocolFailure, "no application protocol in common with the client"),
                              alert: .noApplicationProtocol)
            }
        }
        negotiatedApplicationProtocol = selected

        let alpn = selected.map { Self.extensionBlock(16, Self.protocolList([$0])) } ?? []
        var hello: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 0x22, count: 32) + [0, 0x13, 0x01, 0]
        let helloExtensions = chosen == .tls13 ? Self.extensionBlock(43, [0x03, 0x04]) : alpn
        if !helloExtensions.isEmpty { hello += Self.u16(helloExtensions.count) + helloExtensions }
        queue(.handshake, message(.serverHello, hello))
        if chosen == .tls13 {
            sendProtected = true
            queue(.handshake, message(.encryptedExtensions, Self.u16(alpn.count) + alpn))
        }
        if configuration.clientAuthentication != .none { queue(.handshake, message(.certificateRequest, [0, 0])) }
        queue(.handshake, message(.certificate, certificateList(context.chain)))
        queue(.handshake, chosen == .tls13 ? message(.finished, [UInt8](repeating: 0, count: 12)) : message(.serverHelloDone, []))
        stage = .waitClientFlight
    }

    private func readServerHello(_ body: [UInt8]) throws {
        var reader = Reader(body)
        _ = try reader.bytes(2 + 32)
        _ = try reader.bytes(Int(try reader.u8()))
        _ = try reader.bytes(3)
        var chosen = TLSVersion.tls12
        let extensions = reader.isAtEnd ? [:] : try reader.extensions()
        if let data = extensions[43] {
            var inner = Reader(data)
            guard let v = TLSVersion(rawValue: Int(try inner.u16())) else {
                throw Failure(error: error(.protocolFailure, "the server chose an unknown version"), alert: .illegalParameter)
            }
            chosen = v
        }
        guard chosen >= configuration.minimumTLSVersion && chosen <= configuration.maximumTLSVersion else {
            throw Failure(error: error(.protocolFailure, "the server chose \(chosen), outside the configured versions"),
                          alert: .protocolVersion)
        }
        version = chosen
        if chosen == .tls13 { receiveProtected = true } else { try readSelectedProtocol(extensions) }
        stage = .waitServerFlight
    }

    /// The server's ALPN choice (ServerHello in TLS 1.2, EncryptedExtensions in 1.3).
    private func readSelectedProtocol(_ extensions: [UInt16: [UInt8]]) throws {
        guard let alpn = extensions[16] else { return }
        var inner = Reader(alpn)
        let names = try inner.protocolNames()
        guard names.count == 1, let chosen = names.first, offeredProtocols?.contains(chosen) == true else {
            throw Failure(error: error(.protocolFailure, "the server chose an ALPN protocol the client did not offer"),
                          alert: .illegalParameter)
        }
        negotiatedApplicationProtocol = chosen
    }

    /// The peer's chain: trusted exactly, then the core's host-name and pin rules.
    private func verifyPeer() throws {
        if role == .server && configuration.clientAuthentication == .none {
            throw Failure(error: error(.protocolFailure, "a certificate the server did not ask for"), alert: .unexpectedMessage)
        }
        if role == .server && peerCertificateChain.isEmpty { return }  // judged at Finished
        if role == .client && configuration.certificateVerification == .insecureNoVerification { return }
        func reject(_ failure: TLSError.VerificationFailure, _ reason: String) -> Failure {
            Failure(error: TLSError(.certificateVerificationFailed, reason, backend: FakeTLSBackend.id, verificationFailure: failure),
                    alert: failure.alert)
        }
        guard let leaf = peerCertificateChain.first else {
            throw reject(.noCertificate, "the server sent no certificate")
        }
        let policy = TLSPeerPolicy(configuration: configuration, role: role, serverName: serverName)
        if !policy.pinsOnly && !peerCertificateChain.contains(where: context.roots.contains) {
            throw reject(.unknownIssuer, "no certificate of the chain is one of the trusted certificates (FakeTLS trusts exact certificates)")
        }
        let verdict = leaf.withUnsafeBytes { policy.check(leafDER: $0, sha256: { SHA2.sha256(Array($0)) }) }
        if let verdict { throw reject(verdict.failure, verdict.reason) }
    }

    // MARK: - Records

    /// Reads one record into the handshake buffer or the plaintext. Nil when a record
    /// was taken; a status when the transport has nothing or the record ends the call.
    private func readRecord() throws -> TLSEngineStatus? {
        /// The record's length, once its header is in.
        func bodyLength() -> Int? { inbound.count >= 5 ? (Int(inbound[3]) << 8) | Int(inbound[4]) : nil }
        while true {
            if let length = bodyLength() {
                // A header no record has: the core's wire reader has seen it too and names
                // the alert (one rule for every backend), so none is sent from here.
                guard inbound[1] == 3, length <= Self.maxPlaintext + 256 + Self.mac12 else {
                    throw Failure(error: error(.protocolFailure, "a malformed record header"), alert: nil)
                }
                if inbound.count >= 5 + length { break }
            }
            var chunk = [UInt8](repeating: 0, count: 16_384 + 2048)
            let result = chunk.withUnsafeMutableBytes { transport.read(into: $0) }
            switch result {
            case .transferred(let count): inbound += chunk[0..<count]
            case .wouldBlock: return .wantRead
            case .endOfStream:
                throw Failure(error: error(.unexpectedEOF, "the transport ended without close_notify"), alert: nil)
            case .failed(let errno):
                throw Failure(error: TLSError(.transportFailure, "transport read failed", backend: FakeTLSBackend.id, errno: errno),
                              alert: nil)
            }
        }
        let length = (Int(inbound[3]) << 8) | Int(inbound[4])
        var type = inbound[0]
        var content = Array(inbound[5..<(5 + length)])
        inbound.removeFirst(5 + length)
        if type == Content.changeCipherSpec.rawValue {
            guard content == [1], version == .tls12 || role == .server else {
                throw Failure(error: error(.protocolFailure, "an unexpected ChangeCipherSpec"), alert: .unexpectedMessage)
            }
            receiveProtected = true
            return nil
        }
        if receiveProtected || (type == Content.applicationData.rawValue && role == .server) {
            receiveProtected = true
            (type, content) = try unprotect(type, content)
        }
        switch Content(rawValue: type) {
        case .handshake:
            handshakeBytes += content
        case .applicationData:
            guard stage == .established else {
                throw Failure(error: error(.protocolFailure, "application data before the handshake completed"), alert: .unexpectedMessage)
            }
            plaintext += content
        case .alert:
            guard content.count == 2 else { throw Failure(error: error(.protocolFailure, "a malformed alert"), alert: .decodeError) }
            let alert = TLSAlert(content[1])
            if alert == .closeNotify { return .closeNotify }
            if content[0] == 1 { return nil }  // a warning
            throw Failure(error: TLSError(.alertReceived, "the peer sent a fatal \(alert) alert", backend: FakeTLSBackend.id,
                                          alert: alert), alert: nil)
        default:
            throw Failure(error: error(.protocolFailure, "a record of unknown type \(type)"), alert: .unexpectedMessage)
        }
        return nil
    }

    private func unprotect(_ type: UInt8, _ content: [UInt8]) throws -> (UInt8, [UInt8]) {
        let badMAC = Failure(error: error(.protocolFailure, "a protected record failed its check"), alert: .badRecordMAC)
        if version == .tls12 {
            guard content.count >= Self.mac12, content.suffix(Self.mac12).allSatisfy({ $0 == 0 }) else { throw badMAC }
            return (type, Array(content.dropLast(Self.mac12)))
        }
        guard type == Content.applicationData.rawValue, content.count > Self.tag13,
              content.suffix(Self.tag13).allSatisfy({ $0 == 0 }) else { throw badMAC }
        var inner = content.dropLast(Self.tag13)
        while inner.last == 0 { inner.removeLast() }
        guard let innerType = inner.popLast() else { throw badMAC }
        return (innerType, Array(inner))
    }

    private func nextHandshakeMessage() throws -> (UInt8, [UInt8])? {
        guard handshakeBytes.count >= 4 else { return nil }
        let length = (Int(handshakeBytes[1]) << 16) | (Int(handshakeBytes[2]) << 8) | Int(handshakeBytes[3])
        // The core's header rule, also for the protected messages its wire reader cannot see.
        if let violation = TLSWire.validateHandshakeHeader(type: handshakeBytes[0], length: length) {
            throw Failure(error: error(.protocolFailure, violation.reason), alert: violation.alert)
        }
        guard handshakeBytes.count >= 4 + length else { return nil }
        let message = (handshakeBytes[0], Array(handshakeBytes[4..<(4 + length)]))
        handshakeBytes.removeFirst(4 + length)
        return message
    }

    private func queue(_ type: Content, _ content: [UInt8]) {
        var recordType = type.rawValue
        var payload = content
        if sendProtected && type != .changeCipherSpec {
            if version == .tls12 {
                payload += [UInt8](repeating: 0, count: Self.mac12)
            } else {
                payload += [type.rawValue] + [UInt8](repeating: 0, count: Self.tag13)
                recordType = Content.applicationData.rawValue
            }
        }
        outbound += [recordType, 3, 3] + Self.u16(payload.count) + payload
    }

    /// Writes what is queued. Nil when all is on the transport.
    private func flush() -> TLSEngineStatus? {
        while !outbound.isEmpty {
            let result = outbound.withUnsafeBytes { transport.write($0) }
            switch result {
            case .transferred(let count): outbound.removeFirst(count)
            case .wouldBlock: return .wantWrite
            case .endOfStream:
                return .failure(error(.unexpectedEOF, "the transport closed"))
            case .failed(let errno):
                return .failure(TLSError(.transportFailure, "transport write failed", backend: FakeTLSBackend.id, errno: errno))
            }
        }
        return nil
    }

    private func fail(_ failure: Failure) -> TLSEngineStatus {
        // Bytes the core's wire reader has already judged get its alert (the core sends it
        // through sendFatalAlert after this call), not one of FakeTLS's choosing.
        if let alert = failure.alert, transport.wire.violation == nil { _ = sendFatalAlert(alert) }
        var error = failure.error
        if error.alert == nil, let alert = failure.alert { error.alert = alert }
        return .failure(error)
    }

    private func error(_ code: TLSError.Code, _ message: String) -> TLSError {
        TLSError(code, message, backend: FakeTLSBackend.id)
    }

    private func message(_ type: Message, _ body: [UInt8]) -> [UInt8] {
        [type.rawValue, UInt8(body.count >> 16 & 0xFF), UInt8(body.count >> 8 & 0xFF), UInt8(body.count & 0xFF)] + body
    }

    private func certificateList(_ chain: [[UInt8]]) -> [UInt8] {
        let list = chain.flatMap { Self.u24($0.count) + $0 }
        return Self.u24(list.count) + list
    }

    private static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    private static func u24(_ value: Int) -> [UInt8] { [UInt8(value >> 16 & 0xFF)] + u16(value) }
    private static func extensionBlock(_ type: UInt16, _ data: [UInt8]) -> [UInt8] { u16(Int(type)) + u16(data.count) + data }
    private static func protocolList(_ names: [String]) -> [UInt8] {
        let list = names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        return u16(list.count) + list
    }
}

/// A failure that ends the connection: the error we report and the alert we send.
private struct Failure: Error {
    let error: TLSError
    let alert: TLSAlert?
}

/// A bounds-checked cursor; running off the end is decode_error.
private struct Reader {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var isAtEnd: Bool { index == bytes.count }

    private static var malformed: Failure {
        Failure(error: TLSError(.protocolFailure, "a malformed handshake message", backend: FakeTLSBackend.id), alert: .decodeError)
    }

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count <= bytes.count - index else { throw Self.malformed }
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }
    mutating func u8() throws -> UInt8 { try bytes(1)[0] }
    mutating func u16() throws -> UInt16 { let b = try bytes(2); return UInt16(b[0]) << 8 | UInt16(b[1]) }
    mutating func u24() throws -> Int { let b = try bytes(3); return Int(b[0]) << 16 | Int(b[1]) << 8 | Int(b[2]) }

    /// An extensions block: type → data.
    mutating func extensions() throws -> [UInt16: [UInt8]] {
        var block = Reader(try bytes(Int(try u16())))
        var result: [UInt16: [UInt8]] = [:]
        while !block.isAtEnd { result[try block.u16()] = try block.bytes(Int(try block.u16())) }
        return result
    }

    mutating func protocolNames() throws -> [String] {
        var list = Reader(try bytes(Int(try u16())))
        var names: [String] = []
        while !list.isAtEnd { names.append(String(decoding: try list.bytes(Int(try list.u8())), as: UTF8.self)) }
        return names
    }

    mutating func certificateList() throws -> [[UInt8]] {
        var list = Reader(try bytes(try u24()))
        var chain: [[UInt8]] = []
        while !list.isAtEnd { chain.append(try list.bytes(try list.u24())) }
        return chain
    }
}
