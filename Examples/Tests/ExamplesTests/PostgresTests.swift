import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import PostgresTLSKit
import Testing
import TLSKit
import TLSKitNIO

/// A PostgreSQL 15 server (Debian's `postgresql`) in a temporary directory, on a loopback
/// port, with `ssl = on`, a generated certificate, and this pg_hba.conf:
///
///     local     all all                  trust          (the test's own set-up over the socket)
///     hostssl   all tlskit 127.0.0.1/32  cert           (client certificate, CN = user name)
///     hostssl   all app    127.0.0.1/32  scram-sha-256  (password, over TLS only)
///     hostnossl all all    0.0.0.0/0     reject
///
/// postgres cannot take port 0 and cannot be handed a bound socket, so no port can be
/// reserved for it without a race. Instead postgres binds the port itself and the start is
/// retried on another port when it could not: `pg_ctl -w start` fails and the attempt's
/// log says `could not bind IPv4 address "127.0.0.1": Address already in use`. The
/// candidates are random ports below the kernel's ephemeral range
/// (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), where port-0 binds
/// and outgoing connections of other tests take theirs: only a server on a fixed port
/// can be in the way, and then the next candidate is tried.
final class PostgresServer {
    static let bin = "/usr/lib/postgresql/15/bin"
    let dir: TemporaryDirectory
    let port: Int
    let runAs: [String]
    /// The ports tried before `port` that postgres could not bind, with each attempt's log.
    let refusals: [(port: Int, log: String)]

    /// Random candidate ports below the ephemeral range (see the type's documentation).
    static func candidatePorts(_ count: Int = 10) -> [Int] {
        (0..<count).map { _ in Int.random(in: 20000..<32768) }
    }

    /// Starts the server on the first of `ports` postgres can bind; the client
    /// certificate's CN must be "tlskit".
    static func start(server: TLSIdentity, clientCA: String, ports: [Int] = candidatePorts()) async throws -> PostgresServer {
        guard FileManager.default.isExecutableFile(atPath: bin + "/postgres") else {
            throw TLSError(.invalidConfiguration, "PostgreSQL 15 is not installed (Scripts/install-dependencies installs postgresql)", backend: "tests")
        }
        let dir = try TemporaryDirectory()
        // PostgreSQL refuses to run as root: run it as Debian's postgres user then.
        let runAs = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []
        let files = [
            ("server.crt", server.certificateChainPEM), ("server.key", server.privateKeyPEM), ("client-ca.crt", clientCA),
            ("pg_hba.conf", """
                local all all trust
                hostssl all tlskit 127.0.0.1/32 cert
                hostssl all app 127.0.0.1/32 scram-sha-256
                hostnossl all all 0.0.0.0/0 reject

                """),
        ]
        for (name, text) in files {
            let path = try dir.write(name, text)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        }
        if getuid() == 0 {
            for name in [""] + files.map(\.0) {
                try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"],
                                                      ofItemAtPath: dir.path + "/" + name)
            }
        }
        let initdb = try await run(runAs.first ?? bin + "/initdb", Array(runAs.dropFirst()) + (runAs.isEmpty ? [] : [bin + "/initdb"]) + [
            "-D", dir.path + "/data", "-U", "tlskit", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        guard initdb.status == 0 else { dir.remove(); throw TLSError(.invalidConfiguration, "initdb failed: \(initdb.output)\(initdb.error)", backend: "tests") }
        // postgres binds the port itself; on "could not bind" the next candidate is tried.
        var refusals: [(port: Int, log: String)] = []
        for (attempt, port) in ports.enumerated() {
            let log = dir.path + "/postgres-\(attempt + 1).log"
            let options = [
                "-p \(port)", "-k \(dir.path)", "-c listen_addresses=127.0.0.1", "-c ssl=on",
                "-c ssl_cert_file=\(dir.path)/server.crt", "-c ssl_key_file=\(dir.path)/server.key",
                "-c ssl_ca_file=\(dir.path)/client-ca.crt", "-c hba_file=\(dir.path)/pg_hba.conf", "-c fsync=off",
            ].joined(separator: " ")
            let start = try await run(runAs.first ?? bin + "/pg_ctl", Array(runAs.dropFirst()) + (runAs.isEmpty ? [] : [bin + "/pg_ctl"]) + [
                "-D", dir.path + "/data", "-l", log, "-o", options, "-w", "-t", "120", "start"])
            if start.status == 0 {
                let server = PostgresServer(dir: dir, port: port, runAs: runAs, refusals: refusals)
                try await server.psql("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
                return server
            }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            guard text.contains("could not bind IPv4 address \"127.0.0.1\": Address already in use") else {
                dir.remove()
                throw TLSError(.invalidConfiguration, "postgres did not start: \(start.output)\(start.error)\n\(text)", backend: "tests")
            }
            refusals.append((port, text))
        }
        dir.remove()
        throw TLSError(.invalidConfiguration, "postgres could bind none of the ports \(ports)", backend: "tests")
    }

    private init(dir: TemporaryDirectory, port: Int, runAs: [String], refusals: [(port: Int, log: String)]) {
        self.dir = dir
        self.port = port
        self.runAs = runAs
        self.refusals = refusals
    }

    /// Runs SQL as the superuser over the unix socket.
    func psql(_ sql: String) async throws {
        let result = try await run(runAs.first ?? Self.bin + "/psql", Array(runAs.dropFirst()) + (runAs.isEmpty ? [] : [Self.bin + "/psql"]) + [
            "-h", dir.path, "-p", "\(port)", "-U", "tlskit", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard result.status == 0 else { throw TLSError(.invalidConfiguration, "psql failed: \(result.error)", backend: "tests") }
    }

    func stop() async {
        _ = try? await run(runAs.first ?? Self.bin + "/pg_ctl", Array(runAs.dropFirst()) + (runAs.isEmpty ? [] : [Self.bin + "/pg_ctl"]) + [
            "-D", dir.path + "/data", "-m", "immediate", "-w", "stop"])
        dir.remove()
    }
}

private func quietLogger() -> Logger {
    var logger = Logger(label: "hello-postgres-test")
    logger.logLevel = .critical
    return logger
}

/// The SQLSTATE of a server error, e.g. "28000" (invalid authorization).
private func sqlState(_ error: (any Error)?) -> String? {
    (error as? PSQLError)?.serverInfo?[.sqlState]
}

private let statSSL = "SELECT current_user, ssl, version, cipher, coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

@Suite("hello-postgres: PostgreSQL 15 over TLSKitNIO", .serialized, .timeLimit(.minutes(10)))
struct PostgresTests {
    @Test("password over TLS and client certificate; pg_stat_ssl shows TLSv1.3 and the negotiated cipher; plaintext and a missing certificate are refused", arguments: allBackends)
    func queries(backend: Backend) async throws {
        let ids = try Identities(backend, clientName: "tlskit")
        let server = try await PostgresServer.start(server: ids.server, clientCA: ids.client.certificateChainPEM)
        do {
            try await checkServer(server, backend: backend, ids: ids)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("a port another listener holds: postgres reports it could not bind, and starts on the next candidate")
    func portTaken() async throws {
        let backend = allBackends[0]
        let ids = try Identities(backend, clientName: "tlskit")
        // Held for the whole test, as another program's server would.
        let holder = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let taken = try #require(holder.localAddress?.port)
        let ports = [taken] + PostgresServer.candidatePorts()
        let server = try await PostgresServer.start(server: ids.server, clientCA: ids.client.certificateChainPEM, ports: ports)
        // Normally the next candidate; a later one only if another program holds that too.
        let next = ports[server.refusals.count]
        do {
            #expect(server.refusals.first?.port == taken)
            #expect(server.refusals.first?.log.contains("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use") == true,
                    "\(server.refusals.first?.log ?? "")")
            #expect(server.port == next)
            // The server on `next` is ours: TLS on 127.0.0.1, and it says which port it serves.
            let connection = try await PostgresTLSKit.connect(
                host: "127.0.0.1", port: server.port, context: try clientContext(backend, trusting: ids.server, identity: ids.client),
                serverHostname: "localhost", username: "tlskit", database: "postgres", logger: quietLogger())
            var served: [Int] = []
            for try await port in try await connection.query("SELECT inet_server_port()", logger: quietLogger()).decode(Int.self) {
                served.append(port)
            }
            #expect(served == [next])
            try await connection.close()
        } catch {
            await server.stop()
            try await holder.close()
            throw error
        }
        await server.stop()
        try await holder.close()
    }

    private func checkServer(_ server: PostgresServer, backend: Backend, ids: Identities) async throws {
        let logger = quietLogger()
        // 1. Password authentication over TLS, in two steps to read what TLSKit negotiated.
        let context = try clientContext(backend, trusting: ids.server)
        let channel = try await PostgresTLSKit.establishTLS(host: "127.0.0.1", port: server.port, context: context, serverHostname: "localhost")
        let info = try #require(try await channel.tlsKitConnectionInfo().get())
        #expect(info.negotiatedVersion == .tls13)
        let connection = try await PostgresConnection.connect(
            on: channel.eventLoop,
            configuration: .init(establishedChannel: channel, tls: .disable, username: "app", password: "app-secret", database: "postgres"),
            id: 1, logger: logger)
        var rows: [(String, Bool, String, String, String)] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: statSSL), logger: logger).decode((String, Bool, String, String, String).self) {
            rows.append(row)
        }
        #expect(rows.count == 1)
        #expect(rows.first?.0 == "app")
        #expect(rows.first?.1 == true)
        #expect(rows.first?.2 == "TLSv1.3")
        #expect(rows.first?.3 == info.cipherSuite)
        #expect(rows.first?.4 == "")
        var sum = 0
        for try await value in try await connection.query("SELECT s::int FROM generate_series(1, 100) AS s", logger: logger).decode(Int.self) {
            sum += value
        }
        #expect(sum == 5050)
        try await connection.close()

        // 2. Client certificate (`cert` rule: the CN is the user name), through the one-call helper.
        let certContext = try clientContext(backend, trusting: ids.server, identity: ids.client)
        let certConnection = try await PostgresTLSKit.connect(
            host: "127.0.0.1", port: server.port, context: certContext, serverHostname: "localhost",
            username: "tlskit", database: "postgres", logger: logger)
        var certRows: [(String, Bool, String, String, String)] = []
        for try await row in try await certConnection.query(PostgresQuery(unsafeSQL: statSSL), logger: logger).decode((String, Bool, String, String, String).self) {
            certRows.append(row)
        }
        #expect(certRows.count == 1)
        #expect(certRows.first?.0 == "tlskit")
        #expect(certRows.first?.1 == true)
        #expect(certRows.first?.2 == "TLSv1.3")
        #expect(certRows.first?.4 == "/CN=tlskit")
        try await certConnection.close()

        // 3. The `cert` user over TLS without a certificate: refused by the server.
        let noCert = await #expect(throws: PSQLError.self) {
            _ = try await PostgresTLSKit.connect(
                host: "127.0.0.1", port: server.port, context: context, serverHostname: "localhost",
                username: "tlskit", database: "postgres", logger: logger)
        }
        #expect(sqlState(noCert) == "28000", "\(String(reflecting: noCert))")

        // 4. Plaintext (postgres-nio without TLS): `hostnossl … reject`.
        let plain = await #expect(throws: PSQLError.self) {
            _ = try await PostgresConnection.connect(
                configuration: .init(host: "127.0.0.1", port: server.port, username: "app", password: "app-secret", database: "postgres", tls: .disable),
                id: 2, logger: logger)
        }
        #expect(sqlState(plain) == "28000", "\(String(reflecting: plain))")
    }
}

/// A TCP peer that reads the 8-byte SSLRequest, records it, answers `reply` in one write and closes.
private func withFakePostgres<R>(reply: [UInt8], _ body: (Int, EventLoopFuture<[UInt8]>) async throws -> R) async throws -> R {
    let group = MultiThreadedEventLoopGroup.singleton
    let eventLoop = group.next()
    let request = eventLoop.makePromise(of: [UInt8].self)
    let listener = try await ServerBootstrap(group: eventLoop)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(FakePostgres(reply: reply, request: request))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    defer { listener.close(promise: nil) }
    return try await body(listener.localAddress!.port!, request.futureResult)
}

private final class FakePostgres: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: [UInt8]
    let request: EventLoopPromise<[UInt8]>
    var received: [UInt8] = []

    init(reply: [UInt8], request: EventLoopPromise<[UInt8]>) {
        self.reply = reply
        self.request = request
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytesView
        if received.count >= 8 {
            request.succeed(received)
            // Then close: a client that wrongly went on to a handshake fails instead of waiting.
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        request.succeed(received)
    }
}

@Suite("hello-postgres: the SSLRequest answer (a real TCP peer)", .timeLimit(.minutes(10)))
struct SSLRequestTests {
    static let cases: [([UInt8], PostgresTLSKitError)] = [
        (Array("Sjunk".utf8), .bytesAfterSSLResponse(4)),       // CVE-2021-23222: injected bytes after 'S'
        (Array("S\u{16}\u{03}\u{01}".utf8), .bytesAfterSSLResponse(3)),
        (Array("N".utf8), .tlsNotSupportedByServer),
        (Array("E".utf8), .unexpectedSSLResponse(0x45)),
        ([], .closedDuringTLSSetup),
    ]

    @Test("anything but exactly one 'S' is refused with a clear error", arguments: cases)
    func refused(reply: [UInt8], expected: PostgresTLSKitError) async throws {
        let backend = allBackends[0]
        let ids = try Identities(backend)
        let context = try clientContext(backend, trusting: ids.server)
        try await withFakePostgres(reply: reply) { port, request in
            let error = await #expect(throws: PostgresTLSKitError.self) {
                _ = try await PostgresTLSKit.establishTLS(host: "127.0.0.1", port: port, context: context, serverHostname: "localhost")
            }
            #expect(error == expected)
            let sent = try await request.get()
            #expect(sent == PostgresTLSKit.sslRequest)
        }
    }

    @Test("the error for 'N' says the server refuses TLS and that there is no plaintext fallback")
    func message() {
        #expect(PostgresTLSKitError.tlsNotSupportedByServer.description
                == "the PostgreSQL server answered 'N' to SSLRequest: it does not accept TLS (no plaintext fallback)")
    }
}
