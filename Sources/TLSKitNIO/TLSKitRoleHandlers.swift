#if NIO
public import NIOCore
public import TLSCore

/// The client end: `NIOSSLClientHandler`'s counterpart.
public final class TLSKitClientHandler: TLSKitHandler {
    /// Creates a client handler.
    /// - Parameters:
    ///   - context: the TLSKit context (either backend) the connection is made from.
    ///   - serverHostname: the name for SNI and host-name verification; nil uses the
    ///     configuration's `serverName`.
    ///   - shutdownTimeout: how long `close(mode: .all)` waits for the peer's close_notify.
    ///   - customVerificationCallback: judges the server's certificate, possibly later
    ///     (NIOSSL's `customVerificationCallback`; see ``TLSKitCustomVerificationCallback``).
    /// - Throws: `TLSError` with code `invalidConfiguration` (reported by TLSKit,
    ///   ``TLSBackendID/tlsKit``) for a name that is neither a DNS name nor an IP address.
    public init(context: TLSContext, serverHostname: String?, shutdownTimeout: TimeAmount = .seconds(5),
                customVerificationCallback: TLSKitCustomVerificationCallback? = nil) throws {
        let connection = context.makeConnection()
        if let serverHostname {
            // The same rule the connection applies when the handshake starts, checked
            // here so that a bad name fails at construction, as NIOSSLClientHandler's does.
            try TLSConfiguration.checkServerName(serverHostname)
            connection.serverName = serverHostname
        }
        try connection.setConnectState()
        super.init(connection: connection, shutdownTimeout: shutdownTimeout,
                   customVerificationCallback: customVerificationCallback)
    }

    /// Creates a client handler with the material a ``TLSReloadingContext`` holds now (a
    /// client identity for mutual TLS that is renewed while the application runs).
    /// - Throws: as ``init(context:serverHostname:shutdownTimeout:customVerificationCallback:)``.
    public convenience init(context reloading: TLSReloadingContext, serverHostname: String?,
                            shutdownTimeout: TimeAmount = .seconds(5),
                            customVerificationCallback: TLSKitCustomVerificationCallback? = nil) throws {
        try self.init(context: reloading.current, serverHostname: serverHostname, shutdownTimeout: shutdownTimeout,
                      customVerificationCallback: customVerificationCallback)
    }
}

/// The server end: `NIOSSLServerHandler`'s counterpart.
public final class TLSKitServerHandler: TLSKitHandler {
    /// Creates a server handler.
    /// - Parameters:
    ///   - context: the TLSKit context (either backend), with the server's identity.
    ///   - shutdownTimeout: how long `close(mode: .all)` waits for the peer's close_notify.
    ///   - customVerificationCallback: judges the client's certificate (when the context
    ///     requests one), possibly later (see ``TLSKitCustomVerificationCallback``).
    public init(context: TLSContext, shutdownTimeout: TimeAmount = .seconds(5),
                customVerificationCallback: TLSKitCustomVerificationCallback? = nil) {
        let connection = context.makeConnection()
        try! connection.setAcceptState()  // a fresh connection has no role: cannot throw
        super.init(connection: connection, shutdownTimeout: shutdownTimeout,
                   customVerificationCallback: customVerificationCallback)
    }

    /// Creates a server handler with the material a ``TLSReloadingContext`` holds now.
    /// Make one per accepted channel (in the child channel initializer) from the same
    /// reloading context: each new connection gets the material in use, and a reload
    /// never rebuilds the server or its pipeline.
    public convenience init(context reloading: TLSReloadingContext, shutdownTimeout: TimeAmount = .seconds(5),
                            customVerificationCallback: TLSKitCustomVerificationCallback? = nil) {
        self.init(context: reloading.current, shutdownTimeout: shutdownTimeout,
                  customVerificationCallback: customVerificationCallback)
    }
}
#endif
