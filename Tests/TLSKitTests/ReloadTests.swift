import Foundation
import Testing
import TLSKit

/// TLSReloadingContext: certificates replaced while a server runs, on every backend.
@Suite("Certificate reload", .timeLimit(.minutes(5)), .sharesProcess)
struct ReloadTests {
    /// A CA, two leaves for localhost ("reload-a", "reload-b") and an expired one, and a
    /// server configuration reading `serve.pem`/`serve.key`, which the tests overwrite.
    final class Rotation: @unchecked Sendable {
        let factory: CertificateFactory
        let chain: String
        let key: String

        init() throws {
            factory = try CertificateFactory()
            try factory.makeCA("ca")
            try factory.issue("a", issuer: "ca", commonName: "reload-a", names: ["localhost"])
            try factory.issue("b", issuer: "ca", commonName: "reload-b", names: ["localhost"])
            try factory.issue("old", issuer: "ca", commonName: "reload-old", names: ["localhost"], days: (-10, -1))
            try factory.issue("later", issuer: "ca", commonName: "reload-later", names: ["localhost"], days: (1, 10))
            chain = factory.path("serve.pem")
            key = factory.path("serve.key")
            try install("a")
        }

        deinit { factory.remove() }

        /// Puts `<name>.pem` and `<name>.key` in place, as certbot's deploy hook would (a
        /// new file renamed over the old one).
        func install(_ name: String, key keyName: String? = nil) throws {
            for (source, target) in [(factory.path("\(name).pem"), chain), (factory.path("\(keyName ?? name).key"), key)] {
                let staging = target + ".new"
                try? FileManager.default.removeItem(atPath: staging)
                try FileManager.default.copyItem(atPath: source, toPath: staging)
                guard rename(staging, target) == 0 else { throw POSIXError(.EIO) }
            }
        }

        var serverConfiguration: TLSConfiguration {
            .makeServerConfiguration(certificateChain: .file(chain), privateKey: .file(key))
        }

        func client(_ backend: Backend, version: TLSVersion = .tls13) throws -> TLSContext {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .caFile(factory.path("ca.pem"))
            configuration.serverName = "localhost"
            configuration.maximumTLSVersion = version
            return try backend.type.makeContext(configuration)
        }
    }

    /// The events a reloading context reported, in order.
    final class Events: Sendable {
        private let list = Locked<[TLSReloadEvent]>([])
        var all: [TLSReloadEvent] { list.withLock { $0 } }
        func record(_ event: TLSReloadEvent) { list.withLock { $0.append(event) } }
    }

    /// The common name of the certificate the server presented.
    static func served(_ link: MemoryLink) -> String? { link.client.peerCertificateInfo?.commonName }

    @Test("reload: new handshakes get the new certificate; in-flight connections and tickets keep working",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func reloadKeepsWhatIsInFlight(backend: Backend, version: TLSVersion) throws {
        let rotation = try Rotation()
        let events = Events()
        let reloading = try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration,
                                                onReload: events.record)
        let client = try rotation.client(backend, version: version)
        #expect(reloading.generation == 1)
        #expect(reloading.reloadIfChanged() == nil, "nothing changed: no reload, no event")
        #expect(events.all.isEmpty)

        let inFlight = try MemoryLink(client: client, server: reloading.current)
        #expect(inFlight.handshake().client.last == Step(1, .none))
        #expect(Self.served(inFlight) == "reload-a")
        #expect(inFlight.client.write(Array("before".utf8)) == 6)
        inFlight.exchange()
        #expect(inFlight.server.readStep().1 == Array("before".utf8))
        inFlight.exchange()
        _ = inFlight.client.readStep()   // TLS 1.3: the NewSessionTicket
        let session = try #require(inFlight.client.session)

        try rotation.install("b")
        let event = try #require(reloading.reloadIfChanged())
        #expect(event.succeeded && event.error == nil)
        #expect(event.trigger == .filesChanged)
        #expect(event.generation == 2 && reloading.generation == 2)
        #expect(event.leafCertificates.map(\.commonName) == ["reload-b"])
        #expect(event.description.hasPrefix("reload (files changed): generation 2 in use: "), "\(event)")
        #expect(reloading.reloadIfChanged() == nil, "the same files again: nothing to do")
        #expect(events.all.map(\.generation) == [2])

        let fresh = try MemoryLink(client: client, server: reloading.current)
        #expect(fresh.handshake().client.last == Step(1, .none))
        #expect(Self.served(fresh) == "reload-b")

        // The connection made before the reload goes on, with its certificate.
        #expect(inFlight.server.write(Array("after".utf8)) == 5)
        inFlight.exchange()
        #expect(inFlight.client.readStep().1 == Array("after".utf8))
        #expect(Self.served(inFlight) == "reload-a")

        // A ticket issued before the reload resumes after it: the reloading context
        // gives every context it builds the same ticket key.
        let resumed = try MemoryLink(client: client, server: reloading.current)
        try resumed.client.setSession(session)
        #expect(resumed.handshake().client.last == Step(1, .none))
        #expect(resumed.client.isSessionReused == backend.type.capabilities.contains(.sessionResumption))
        #expect(resumed.server.isSessionReused == backend.type.capabilities.contains(.sessionResumption))
    }

    @Test("a reload that fails keeps serving the material in use and says why: mismatched key, missing file, expired or not yet valid certificate",
          arguments: allBackends)
    func failedReloadKeepsTheOldMaterial(backend: Backend) throws {
        let rotation = try Rotation()
        let events = Events()
        let reloading = try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration,
                                                onReload: events.record)
        let client = try rotation.client(backend)

        func expectStillServingA(_ what: String) throws {
            #expect(reloading.generation == 1, "\(what)")
            let link = try MemoryLink(client: client, server: reloading.current)
            #expect(link.handshake().client.last == Step(1, .none), "\(what)")
            #expect(Self.served(link) == "reload-a", "\(what)")
        }

        try rotation.install("b", key: "a")
        let mismatch = reloading.reload()
        #expect(mismatch.trigger == .request)
        #expect(mismatch.error?.code == .keyCertificateMismatch, "\(mismatch)")
        #expect(mismatch.error?.backend == backend.id)
        #expect(mismatch.generation == 1 && mismatch.leafCertificates.isEmpty)
        #expect(mismatch.description.hasPrefix("reload (on request) FAILED, keeping generation 1: "), "\(mismatch)")
        try expectStillServingA("mismatched key")
        #expect(reloading.reloadIfChanged() == nil, "a failed load marks its files seen: no retry until they change")

        try FileManager.default.removeItem(atPath: rotation.key)
        let missing = try #require(reloading.reloadIfChanged(), "a file that disappears is a change")
        #expect(missing.error?.code == .badPrivateKey, "\(missing)")
        #expect(missing.error?.message.contains(rotation.key) == true, "\(missing)")
        try expectStillServingA("missing key file")

        try rotation.install("old")
        let expired = reloading.reload()
        #expect(expired.error?.code == .badCertificate, "\(expired)")
        #expect(expired.error?.message.contains("expired at") == true, "\(expired)")
        #expect(expired.error?.message.contains("reload-old") == true, "\(expired)")
        try expectStillServingA("expired certificate")

        try rotation.install("later")
        let early = reloading.reload()
        #expect(early.error?.code == .badCertificate, "\(early)")
        #expect(early.error?.message.contains("is not valid before") == true, "\(early)")
        try expectStillServingA("certificate not yet valid")
        #expect(events.all.count == 4 && events.all.allSatisfy { !$0.succeeded })

        // The first load has no old material to keep: it throws.
        let refused = try #require(throws: TLSError.self) {
            try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration)
        }
        #expect(refused.code == .badCertificate && refused.message.contains("reload-later"), "\(refused)")
        // Unless expired certificates are explicitly accepted.
        try rotation.install("old")
        let lenient = try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration,
                                              refusesInvalidCertificates: false)
        let link = try MemoryLink(client: try rotation.client(backend), server: lenient.current)
        link.handshake()
        #expect(link.client.lastError?.verificationFailure == .expired, "\(String(describing: link.client.lastError))")

        // And back to a good pair: the next reload succeeds.
        try rotation.install("b")
        let recovered = reloading.reload()
        #expect(recovered.succeeded && recovered.generation == 2, "\(recovered)")
    }

    @Test("a client identity for mutual TLS, reloaded: the server sees the new client certificate", arguments: allBackends)
    func clientIdentityReload(backend: Backend) throws {
        let rotation = try Rotation()
        var server = rotation.serverConfiguration
        server.clientAuthentication = .required
        server.trustRoots = .caFile(rotation.factory.path("ca.pem"))
        let serverContext = try backend.type.makeContext(server)
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .caFile(rotation.factory.path("ca.pem"))
        client.serverName = "localhost"
        client.certificateChain = .file(rotation.chain)   // the same files: "a", then "b"
        client.privateKey = .file(rotation.key)
        let reloading = try TLSReloadingContext(backend: backend.type, configuration: client)
        for (name, expected) in [("a", "reload-a"), ("b", "reload-b")] {
            if name == "b" {
                try rotation.install("b")
                #expect(try #require(reloading.reloadIfChanged()).succeeded)
            }
            let link = try MemoryLink(client: reloading.current, server: serverContext)
            #expect(link.handshake().server.last == Step(1, .none), "\(name)")
            #expect(link.server.peerCertificateInfo?.commonName == expected, "\(name)")
        }
    }

    @Test("startWatching reloads when the files change, and only then", arguments: allBackends)
    func timerReloadsOnChange(backend: Backend) throws {
        let rotation = try Rotation()
        let events = Events()
        let reloading = try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration,
                                                onReload: events.record)
        reloading.startWatching(every: .milliseconds(20))
        defer { reloading.stopWatching() }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(events.all.isEmpty, "unchanged files: the timer reloads nothing")

        try rotation.install("b")
        // The event is reported after the swap: wait for the event.
        let deadline = Date().addingTimeInterval(60)
        while events.all.isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(reloading.generation == 2)
        let link = try MemoryLink(client: try rotation.client(backend), server: reloading.current)
        link.handshake()
        #expect(Self.served(link) == "reload-b")
        let first = try #require(events.all.first)
        #expect(first.trigger == .filesChanged && first.succeeded, "\(first)")
    }
}

/// Rotation under load measures the process's descriptors: it runs alone.
@Suite("Certificate reload under load", .serialized, .timeLimit(.minutes(5)), .measuresProcess)
struct ReloadLoadTests {
    typealias Rotation = ReloadTests.Rotation

    @Test("rotation under load: clients handshake over loopback in a loop while the certificate changes; none fails",
          arguments: allBackends)
    func rotationUnderLoad(backend: Backend) throws {
        let rotation = try Rotation()
        let reloading = try TLSReloadingContext(backend: backend.type, configuration: rotation.serverConfiguration)
        let client = try rotation.client(backend)
        let listener = try TLSListener()
        let port = listener.port
        let rounds = 40
        let descriptorsBefore = try openDescriptors()

        let server = Background { () throws -> Int in
            for _ in 0..<rounds {
                let socket = try listener.accept(context: reloading, timeout: .seconds(30))
                try socket.write(try socket.read())
                socket.close()
            }
            return rounds
        }
        // Reloads race the handshakes: a thread alternates the files and reloads.
        let stop = Locked(false)
        let reloader = Background { () throws -> Int in
            var reloads = 0
            var next = "b"
            while !stop.withLock({ $0 }) {
                try rotation.install(next)
                let event = reloading.reload()
                guard event.succeeded else { throw event.error! }
                reloads += 1
                next = next == "a" ? "b" : "a"
                Thread.sleep(forTimeInterval: 0.005)
            }
            return reloads
        }
        var seen: [String: Int] = [:]
        for round in 0..<rounds {
            let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: client, serverName: "localhost",
                                               timeout: .seconds(30))
            try socket.write(Array("ping \(round)".utf8))
            #expect(try socket.read() == Array("ping \(round)".utf8))
            let name = socket.connection.peerCertificateInfo?.commonName ?? "none"
            seen[name, default: 0] += 1
            socket.close()
        }
        stop.withLock { $0 = true }
        #expect(try server.join() == rounds)
        let reloads = try reloader.join()
        #expect(reloads > 0)
        #expect(Set(seen.keys).isSubset(of: ["reload-a", "reload-b"]), "\(seen)")
        #expect(seen.values.reduce(0, +) == rounds)
        #expect(reloading.generation == reloads + 1)
        // Descriptors stay flat: every socket of both ends is closed.
        #expect(try openDescriptors() == descriptorsBefore)
    }
}
