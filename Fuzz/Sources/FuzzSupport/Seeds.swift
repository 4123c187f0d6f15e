import TLSKit

/// Seed inputs captured from real in-memory handshakes of this build's backend, so the
/// corpus is generated at run time (nothing binary is committed).
enum Seeds {
    static func make(_ target: Target) -> [[UInt8]] {
        switch target {
        case .serverHandshake:
            // Mode byte 0 (TLS 1.3 server) / 1 (TLS 1.2 server) doubles as the split point.
            return capture(tls12: false).clientFlights.map { [0] + $0 }
                + capture(tls12: true).clientFlights.map { [1] + $0 }
                + [capture(tls12: false).clientFlights.joined().map { $0 }]
        case .clientHandshake:
            return capture(tls12: false).serverFlights.map { [0] + $0 }
                + capture(tls12: true).serverFlights.map { [1] + $0 }
        case .records:
            // genuine records (TLS 1.3 / 1.2), with close_notify, with EOF, with a flipped
            // byte and a truncation; and raw bytes.
            return [
                [0, 3], [8, 3], [4, 1], [12, 1], [2, 2], [10, 2],
                [0, 40, 0, 0, 30, 0x55], [8, 40, 1, 0, 100, 0], [6, 5, 2, 0, 3, 0x17],
                [1, 0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5],
                [3, 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
            ]
        case .wire:
            // Each side's real flights (client role reads the server's), whole and in
            // 3-byte pieces; a stray 0x87 stream; a plaintext alert after a flight.
            let tls13 = capture(tls12: false), tls12 = capture(tls12: true)
            return [
                [0] + tls13.serverFlights.joined(), [6] + tls12.serverFlights.joined(),
                [1] + tls13.clientFlights.joined(), [7] + tls12.clientFlights.joined(),
                [1, 0x87, 0x5A, 0x13, 0x81, 0x00, 1, 2, 3],
                [0] + (tls13.serverFlights.first ?? []) + [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00],
            ]
        case .configuration:
            let certificate = Array(world.identity.certificateChainPEM.utf8)
            let key = Array(world.identity.privateKeyPEM.utf8)
            let split = [UInt8(certificate.count >> 8), UInt8(certificate.count & 0xFF)]
            return [
                [0] + split + certificate + key,
                [2] + split + certificate + certificate,
                [3, 0, 0] + certificate,
                [0] + split + certificate + Array(key.dropLast(40)),
            ]
        }
    }

    /// Every flight each side wrote in a real handshake, in order.
    static func capture(tls12: Bool) -> (clientFlights: [[UInt8]], serverFlights: [[UInt8]]) {
        let client = (tls12 ? world.client12 : world.client).makeConnection()
        let server = (tls12 ? world.server12 : world.server).makeConnection()
        let clientWire = TLSMemoryPair(), serverWire = TLSMemoryPair()
        Harness.setUp("the client's in-memory transport") { try client.setTransport(.memory(clientWire)) }
        Harness.setUp("the server's in-memory transport") { try server.setTransport(.memory(serverWire)) }
        var clientFlights: [[UInt8]] = [], serverFlights: [[UInt8]] = []
        var done = (client: false, server: false)
        for _ in 0..<20 where !(done.client && done.server) {
            if !done.client { done.client = client.connect() == 1 }
            let fromClient = clientWire.takeOutgoing()
            if !fromClient.isEmpty { clientFlights.append(fromClient); serverWire.deliverIncoming(fromClient) }
            if !done.server { done.server = server.accept() == 1 }
            let fromServer = serverWire.takeOutgoing()
            if !fromServer.isEmpty { serverFlights.append(fromServer); clientWire.deliverIncoming(fromServer) }
        }
        return (clientFlights, serverFlights)
    }
}
