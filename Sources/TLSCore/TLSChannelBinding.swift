/// Channel bindings (RFC 5056) a connection can produce.
public enum TLSChannelBinding: Sendable, Hashable {
    /// RFC 9266 `tls-exporter`: 32 bytes exported with label `EXPORTER-Channel-Binding`.
    /// TLS 1.3 only.
    case tlsExporter
    /// RFC 5929 `tls-server-end-point`: the hash of the server's certificate (SHA-256 for
    /// certificates signed with MD5, SHA-1 or SHA-256; otherwise the signature's hash).
    case tlsServerEndPoint
}

