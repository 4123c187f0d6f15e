// hello-postgres: connects to PostgreSQL over TLS with TLSKitNIO (SSLRequest, then the
// TLSKit handshake, then postgres-nio), optionally with a client certificate, and runs
// queries, including what pg_stat_ssl says about this very connection.
//
//   hello-postgres --backend GnuTLS --host 127.0.0.1 --port 5432 --ca root.pem --user app --password secret
//   hello-postgres --backend OpenSSL --ca root.pem --cert client.pem --key client.key --user client
import ArgumentParser
import ExampleSupport
import Logging
import PostgresNIO
import PostgresTLSKit
import TLSKit

@main
struct HelloPostgresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hello-postgres",
        abstract: "Query PostgreSQL over TLS with TLSKit (optionally with a client certificate).")

    @Option(help: "The TLS backend.") var backend = BackendChoice(DefaultTLSBackend.self)
    @Option(help: "The server's address.") var host = "127.0.0.1"
    @Option(help: "The server's port.") var port = 5432
    @Option(help: "The server's host name, verified against its certificate.") var serverName = "localhost"
    @Option(help: "The CA certificates the server must chain to (PEM).") var ca: String
    @Option(help: "A client certificate chain (PEM), for `cert` authentication.") var cert: String?
    @Option(help: "The client certificate's private key (PEM).") var key: String?
    @Option(help: "The database user.") var user: String
    @Option(help: "The password, if the server asks for one.") var password: String?
    @Option(help: "The database.") var database = "postgres"

    func run() async throws {
        var configuration = TLSKit.TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(try readPEM(ca))])
        if let cert, let key {
            let identity = try loadIdentity(certificate: cert, key: key)
            configuration.certificateChain = .pem(identity.certificateChainPEM)
            configuration.privateKey = .pem(identity.privateKeyPEM)
        }
        let context = try backend.type.makeContext(configuration)
        let connection = try await PostgresTLSKit.connect(
            host: host, port: port, context: context, serverHostname: serverName,
            username: user, password: password, database: database, logger: Logger(label: "hello-postgres"))
        do {
            let rows = try await connection.query(
                "SELECT current_user, version, cipher, coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                logger: connection.logger)
            for try await (user, version, cipher, clientDN) in rows.decode((String, String, String, String).self) {
                print("connected as \(user) over \(version) \(cipher) with TLSKit \(backend.type.id.name)"
                      + (clientDN.isEmpty ? "" : ", client certificate \(clientDN)"))
            }
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
