// Why one file of 400+ lines: the five fuzz targets are five short functions over what
// they share here — the contexts made once per process (World), the handshake driver,
// and the one check of every result against Docs/contract.md — so a target reads with
// its driver and its check beside it.
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore
import CFuzzerDriver

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets. Each one feeds arbitrary bytes to one TLSKit entry point and checks
/// the contract of Docs/contract.md on every result (a violation traps, so libFuzzer
/// reports it like a crash). AddressSanitizer catches memory errors and leaks.
public enum Target: String, Sendable {
    /// A server handshake fed arbitrary client bytes through the in-memory transport.
    case serverHandshake
    /// A client handshake (after its ClientHello) fed arbitrary server bytes.
    case clientHandshake
    /// Application-data reads after a real handshake, from raw bytes or from the peer's
    /// genuine records mutated as the input says.
    case records
    /// Context creation from arbitrary certificate, key, PKCS#12, trust-root and CRL bytes.
    case configuration
    /// TLSCore's wire reader and ClientHello/ServerHello parsers, no backend involved.
    case wire
}

/// Certificates and contexts made once per process for the backend of this build.
struct World: Sendable {
    let identity: TLSIdentity
    let server: TLSContext
    let server12: TLSContext
    let client: TLSContext
    let client12: TLSContext
    let insecureClient: TLSContext

    init() {
        do {
            identity = try DefaultTLSBackend.makeSelfSignedIdentity(
                commonName: "localhost", subjectAlternativeNames: ["localhost"], validityDays: 2)
            var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: identity)
            server = try DefaultTLSBackend.makeContext(serverConfiguration)
            serverConfiguration.maximumTLSVersion = .tls12
            server12 = try DefaultTLSBackend.makeContext(serverConfiguration)
            var clientConfiguration = TLSConfiguration.makeClientConfiguration()
            clientConfiguration.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
            clientConfiguration.serverName = "localhost"
            client = try DefaultTLSBackend.makeContext(clientConfiguration)
            clientConfiguration.maximumTLSVersion = .tls12
            client12 = try DefaultTLSBackend.makeContext(clientConfiguration)
            var insecure = TLSConfiguration.makeClientConfiguration()
            insecure.certificateVerification = .insecureNoVerification
            insecureClient = try DefaultTLSBackend.makeContext(insecure)
        } catch {
            fatalError("fuzz set-up failed: \(error)")
        }
    }
}

let world = World()

/// The most handshake or read calls one input may cause: every loop is bounded.
let maxCalls = 64

public enum Harness {
    /// The program's entry: builds the contexts, writes the seeds if asked, and runs
    /// libFuzzer's driver with the target's callback.
    public static func main(_ target: Target, _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                            _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
        _ = initialize(target)
        var argc = argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
        return LLVMFuzzerRunDriver(&argc, &argv, callback)
    }

    /// `LLVMFuzzerInitialize`: builds the contexts, and with `TLSKIT_FUZZ_SEED_DIR` set,
    /// writes seed inputs captured from real handshakes of this backend into that directory.
    public static func initialize(_ target: Target) -> Int32 {
        _ = world.identity
        if let directory = getenv("TLSKIT_FUZZ_SEED_DIR").map({ String(cString: $0) }) {
            for (index, seed) in Seeds.make(target).enumerated() {
                let path = "\(directory)/seed-\(target.rawValue)-\(index)"
                guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
                _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            }
        }
        return 0
    }

    /// `LLVMFuzzerTestOneInput`.
    public static func run(_ target: Target, _ input: UnsafeBufferPointer<UInt8>) -> Int32 {
        let bytes = Array(input)
        switch target {
        case .serverHandshake: serverHandshake(bytes)
        case .clientHandshake: clientHandshake(bytes)
        case .records: records(bytes)
        case .configuration: configuration(bytes)
        case .wire: wire(bytes)
        }
        return 0
    }

    // MARK: - Targets

    static func serverHandshake(_ input: [UInt8]) {
        let context = input.first.map { $0 & 1 == 0 } ?? true ? world.server : world.server12
        let server = context.makeConnection()
        let wire = TLSMemoryPair()
        setUp("the server's in-memory transport") { try server.setTransport(.memory(wire)) }
        setUp("the server's accept state") { try server.setAcceptState() }
        // The first call sees nothing; then the input arrives in two pieces, then EOF.
        check(server, server.accept(), transportClosed: false)
        let split = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
        wire.deliverIncoming(input[0..<split])
        drive(server, wire, transportClosed: false) { $0.accept() }
        wire.deliverIncoming(input[split...])
        drive(server, wire, transportClosed: false) { $0.accept() }
        wire.closeIncoming()
        drive(server, wire, transportClosed: true) { $0.accept() }
    }

    static func clientHandshake(_ input: [UInt8]) {
        let context = input.first.map { $0 & 1 == 0 } ?? true ? world.client : world.client12
        let client = context.makeConnection()
        let wire = TLSMemoryPair()
        setUp("the client's in-memory transport") { try client.setTransport(.memory(wire)) }
        let first = client.connect()
        require(first == -1 && client.error(for: first) == .wantRead, "first connect() gave \(first)")
        require(wire.pendingOutgoing > 0, "no ClientHello")
        _ = wire.takeOutgoing()
        let split = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
        wire.deliverIncoming(input[0..<split])
        drive(client, wire, transportClosed: false) { $0.connect() }
        wire.deliverIncoming(input[split...])
        drive(client, wire, transportClosed: false) { $0.connect() }
        wire.closeIncoming()
        drive(client, wire, transportClosed: true) { $0.connect() }
    }

    /// Input: mode byte, payload length byte, then mutations of 4 bytes
    /// (operation, position high, position low, value). Mode bit 0: raw input instead
    /// of genuine records; bit 1: close the transport after delivery; bit 2: the peer
    /// sends close_notify after its data; bit 3: TLS 1.2.
    static func records(_ input: [UInt8]) {
        let mode = input.first ?? 0
        let tls12 = mode & 8 != 0
        let client = world.client.makeConnection(), server = (tls12 ? world.server12 : world.server).makeConnection()
        let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
        setUp("the client's in-memory transport") { try client.setTransport(.memory(clientWire)) }
        setUp("the server's in-memory transport") { try server.setTransport(.memory(serverWire)) }
        var done = (client: false, server: false)
        for _ in 0..<20 where !(done.client && done.server) {
            if !done.client { done.client = client.connect() == 1 }
            TLSMemoryPair.exchange(clientWire, serverWire)
            if !done.server { done.server = server.accept() == 1 }
            TLSMemoryPair.exchange(clientWire, serverWire)
        }
        require(done.client && done.server, "the set-up handshake failed: \(String(describing: client.lastError)) / \(String(describing: server.lastError))")
        // Post-handshake messages (TLS 1.3 tickets) are read first so that the
        // records below are the only thing the client sees.
        var scratch = [UInt8](repeating: 0, count: 1)
        let drained = client.read(into: &scratch)
        require(drained == -1 && client.error(for: drained) == .wantRead, "drain gave \(drained)")

        var plaintext: [UInt8] = []
        var records: [UInt8]
        if mode & 1 != 0 {
            records = Array(input.dropFirst())
        } else {
            let length = Int(input.count > 1 ? input[1] : 16) * 97
            plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            if length > 0 {
                let written = server.write(plaintext)
                require(written == Int32(length), "write gave \(written)")
            }
            if mode & 4 != 0 {
                let closed = server.shutdown()
                require(closed == 0, "shutdown gave \(closed)")
            }
            records = serverWire.takeOutgoing()
            var index = 2
            var count = 0
            while index + 4 <= input.count && count < 16 {
                let operation = input[index], value = input[index + 3]
                let position = (Int(input[index + 1]) << 8 | Int(input[index + 2])) % (records.count + 1)
                switch operation % 4 {
                case 0: if position < records.count { records[position] ^= value | 1 }
                case 1: records.removeSubrange(position...)
                case 2: records.insert(value, at: position)
                default: if position < records.count { records.remove(at: position) }
                }
                index += 4
                count += 1
            }
        }
        clientWire.deliverIncoming(records)
        let closeTransport = mode & 2 != 0
        if closeTransport { clientWire.closeIncoming() }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var previous: (Int32, TLSResultCode, TLSError?)?
        for _ in 0..<maxCalls {
            let result = client.read(into: &buffer)
            let code = client.error(for: result)
            if result > 0 {
                require(code == .none, "read \(result) with \(code)")
                received += buffer[0..<Int(result)]
                // Whatever was decrypted is exactly what the peer wrote: a corrupted
                // record never yields data.
                if mode & 1 == 0 {
                    require(received.count <= plaintext.count && received[...] == plaintext[0..<received.count],
                            "read bytes the peer never wrote")
                }
                continue
            }
            switch (result, code) {
            case (0, .zeroReturn): break
            case (0, .ssl):
                require(client.lastError?.code == .unexpectedEOF, "0 .ssl with \(String(describing: client.lastError))")
                require(closeTransport, "unexpected EOF on an open transport")
            case (-1, .wantRead):
                require(!closeTransport, "want-read after end-of-stream")
            case (-1, .ssl):
                require(client.lastError != nil, "-1 .ssl without lastError")
            default:
                fatalError("read gave (\(result), \(code)) \(String(describing: client.lastError))")
            }
            if let previous, previous.1 == .ssl || previous.1 == .zeroReturn {
                // Sticky: a close stays a close, a failure stays the same failure.
                if previous.1 == .zeroReturn { require(result == 0 && code == .zeroReturn, "zeroReturn not sticky") }
                else { require(result == -1 && code == .ssl && sameError(client.lastError, previous.2), "failure not sticky") }
                break
            }
            if code == .wantRead { break }
            previous = (result, code, client.lastError)
        }
        // Writing after a failure or a close: a defined result, never a crash.
        let written = client.write([1, 2, 3])
        let writeCode = client.error(for: written)
        require(written == 3 || (written == -1 && (writeCode == .ssl || writeCode == .wantWrite || writeCode == .wantRead)),
                "write after reading gave (\(written), \(writeCode))")
        _ = client.shutdown()
    }

    /// Input: mode byte, then two parts split at the length in bytes 1–2.
    /// Mode 0: certificate chain + private key (PEM or DER); 1: PKCS#12 bundle with
    /// password "fuzz"; 2: trust roots; 3: CRL bytes with the fixture's trust root;
    /// 4: encrypted key with passphrase "fuzz".
    /// Input: mode byte (bit 0: server role; bits 1-7: piece size), then a peer's byte
    /// stream. The wire reader must reach the same verdict whole and in pieces, keep its
    /// first violation, and never trap; the parsers must never trap on any body.
    static func wire(_ input: [UInt8]) {
        let mode = input.first ?? 0
        let role: TLSRole = mode & 1 == 1 ? .server : .client
        let stream = Array(input.dropFirst())
        var whole = TLSWireReader(role: role)
        stream.withUnsafeBytes { whole.consume($0) }
        var pieces = TLSWireReader(role: role)
        let size = max(1, Int(mode >> 1))
        var index = 0
        var firstViolation: TLSWireViolation?
        while index < stream.count {
            let end = min(index + size, stream.count)
            stream[index..<end].withUnsafeBytes { pieces.consume($0) }
            if firstViolation == nil { firstViolation = pieces.violation }
            require(pieces.violation == firstViolation, "the wire reader changed its verdict")
            index = end
        }
        require(whole.violation == pieces.violation, "whole \(String(describing: whole.violation)) vs pieces \(String(describing: pieces.violation))")
        require(whole.peerProtected == pieces.peerProtected && whole.isTLS13 == pieces.isTLS13, "protection differs by split")
        require((whole.lastPlaintextAlert.map { [$0.level, $0.description] }) == (pieces.lastPlaintextAlert.map { [$0.level, $0.description] }),
                "last plaintext alert differs by split")
        stream.withUnsafeBytes { body in
            if let hello = TLSWire.clientHello(body) { _ = hello.offersVersion(in: 0x0303...0x0304) }
            _ = TLSWire.serverHello(body)
            _ = TLSWire.protocolNames(body)
            _ = TLSWire.alpnExtension(body)
            _ = TLSWire.supportedVersions(body)
            if let header = TLSWire.recordHeader(Array(body.prefix(5))) { _ = TLSWire.validate(header) }
        }
    }

    static func configuration(_ input: [UInt8]) {
        guard input.count >= 3 else { return }
        let mode = input[0] % 5
        let body = Array(input[3...])
        let split = min(body.count, Int(input[1]) << 8 | Int(input[2]))
        let first = Array(body[0..<split]), second = Array(body[split...])
        var configuration: TLSConfiguration
        switch mode {
        case 0, 4:
            configuration = .makeServerConfiguration(certificateChain: .bytes(first), privateKey: .bytes(second))
            if mode == 4 { configuration.privateKeyPassphrase = "fuzz" }
        case 1:
            configuration = .makeServerConfiguration(credential: .pkcs12(.bytes(body), password: "fuzz"))
        case 2:
            configuration = .makeClientConfiguration()
            configuration.trustRoots = .certificates([.bytes(first), .bytes(second)])
            configuration.serverName = "localhost"
        default:
            configuration = .makeClientConfiguration()
            configuration.trustRoots = .certificates([.pem(world.identity.certificateChainPEM)])
            configuration.certificateRevocationLists = [.bytes(first), .bytes(second)]
            configuration.serverName = "localhost"
        }
        let context: TLSContext
        do {
            context = try DefaultTLSBackend.makeContext(configuration)
        } catch let error as TLSError {
            require(error.code != .internalError || !error.message.isEmpty, "empty internal error")
            return
        } catch {
            fatalError("makeContext threw a non-TLSError: \(error)")
        }
        // A context that loaded: use it for one handshake against a real peer.
        let client: TLSConnection, server: TLSConnection
        if mode == 0 || mode == 1 || mode == 4 {
            client = world.insecureClient.makeConnection()
            server = context.makeConnection()
        } else {
            client = context.makeConnection()
            server = world.server.makeConnection()
        }
        let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
        setUp("the client's in-memory transport") { try client.setTransport(.memory(clientWire)) }
        setUp("the server's in-memory transport") { try server.setTransport(.memory(serverWire)) }
        var last = (client: Int32(-1), server: Int32(-1))
        for _ in 0..<20 {
            if last.client == -1 && client.error(for: -1) != .ssl { last.client = client.connect() }
            TLSMemoryPair.exchange(clientWire, serverWire)
            if last.server == -1 && server.error(for: -1) != .ssl { last.server = server.accept() }
            TLSMemoryPair.exchange(clientWire, serverWire)
            check(client, last.client, transportClosed: false)
            check(server, last.server, transportClosed: false)
        }
    }

    // MARK: - Contract checks

    /// Calls the handshake until it stops making progress, checking each result.
    static func drive(_ connection: TLSConnection, _ wire: TLSMemoryPair, transportClosed: Bool,
                      _ call: (TLSConnection) -> Int32) {
        for _ in 0..<maxCalls {
            let result = call(connection)
            check(connection, result, transportClosed: transportClosed)
            let code = connection.error(for: result)
            _ = wire.takeOutgoing()
            if result != -1 || code == .wantRead { return }
            if code == .ssl {
                // Sticky: the same result and the first error again.
                let first = connection.lastError
                let again = call(connection)
                require(again == -1 && connection.error(for: again) == .ssl && sameError(connection.lastError, first),
                        "a fatal failure is not sticky: \(again)")
                return
            }
        }
        fatalError("the handshake neither finished nor waited after \(maxCalls) calls")
    }

    /// One handshake result against the contract table.
    static func check(_ connection: TLSConnection, _ result: Int32, transportClosed: Bool) {
        let code = connection.error(for: result)
        switch (result, code) {
        case (1, .none), (0, .zeroReturn): return
        case (-1, .wantRead):
            require(!transportClosed, "want-read after end-of-stream")
        case (-1, .wantWrite): return
        case (-1, .ssl):
            guard let error = connection.lastError else { fatalError("-1 .ssl without lastError") }
            require(error.backend == DefaultTLSBackend.id || error.backend == .tlsKit,
                    "error from backend \(error.backend)")
            if transportClosed && error.code != .unexpectedEOF {
                require(error.code == .protocolFailure || error.code == .alertReceived
                        || error.code == .certificateVerificationFailed,
                        "after EOF: \(error)")
            }
        default:
            fatalError("handshake gave (\(result), \(code)): \(String(describing: connection.lastError))")
        }
    }

    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("contract violation: \(message())") }
    }

    /// A set-up step that fails only if the harness itself is broken (a connection that
    /// refuses its in-memory transport), never because of the input: it stops the fuzzer
    /// with the step and the error, as a crash libFuzzer reports, instead of a bare trap.
    static func setUp(_ step: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            fatalError("fuzz set-up failed: \(step): \(error)")
        }
    }
}

/// Every field of two errors (`TLSError`'s `==` compares codes only): "the first failure's
/// error stays" means the same error, not just the same kind.
func sameError(_ a: TLSError?, _ b: TLSError?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a.code == b.code && a.message == b.message && a.backend == b.backend
        && a.alert == b.alert && a.verificationFailure == b.verificationFailure && a.errno == b.errno
}
