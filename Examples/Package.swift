// swift-tools-version:6.1
//
// TLSKit examples: real Swift servers and clients over TLSKitNIO, on either backend.
// A package of its own (like Benchmarks/), so that a user of TLSKit never resolves
// Hummingbird, gRPC or postgres-nio. Both backend traits are enabled, so one build serves
// both and every program takes `--backend OpenSSL|GnuTLS`.
//
//   hello-hummingbird  HTTPS server, HTTP/1.1 and HTTP/2 by ALPN, optional mutual TLS
//   hello-grpc         gRPC server and client over mutual TLS (JSON messages, no protobuf)
//   hello-postgres     PostgreSQL over TLS (SSLRequest, then TLSKitNIO), optional client cert
//
// The adapters a user copies live in their own targets: HummingbirdTLSKit (a Hummingbird
// ServerChildChannel), GRPCTLSKit (gRPC transport hooks) and PostgresTLSKit (SSLRequest +
// handshake before postgres-nio takes the channel). See Docs/integrations.md.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "TLSKitExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "TLSKit", path: "..", traits: ["OpenSSL", "GnuTLS", "NIO"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // --backend parsing and the small pieces every program shares.
        .target(
            name: "ExampleSupport",
            dependencies: [
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // Hummingbird 2 over TLSKitNIO: TLSKitChannel (HTTP/1.1) and TLSKitHTTP2Channel (ALPN).
        .target(
            name: "HummingbirdTLSKit",
            dependencies: [
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The hello-hummingbird application, shared by the program and the tests.
        .target(
            name: "HelloHummingbird",
            dependencies: [
                "HummingbirdTLSKit",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                // --nio-ssl: the same server over HummingbirdTLS / NIOSSL, for comparison.
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hello-hummingbird",
            dependencies: [
                "ExampleSupport",
                "HelloHummingbird",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // gRPC over TLSKitNIO: a listener factory for HTTP2ServerTransport.Custom, a
        // .customSecure client transport, and the per-connection TLS details for services.
        .target(
            name: "GRPCTLSKit",
            dependencies: [
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The hello.Greeter service and client (JSON messages), shared by the program and the tests.
        .target(
            name: "HelloGRPC",
            dependencies: [
                "GRPCTLSKit",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hello-grpc",
            dependencies: [
                "ExampleSupport",
                "GRPCTLSKit",
                "HelloGRPC",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // postgres-nio over TLSKitNIO: SSLRequest, exactly one 'S', the TLSKit handshake.
        .target(
            name: "PostgresTLSKit",
            dependencies: [
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hello-postgres",
            dependencies: [
                "ExampleSupport",
                "PostgresTLSKit",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // In-process tests with real peers: curl, openssl s_client, NIOSSLHandler, a
        // PostgreSQL 15 server started by the tests.
        .testTarget(
            name: "ExamplesTests",
            dependencies: [
                "ExampleSupport",
                "HummingbirdTLSKit",
                "HelloHummingbird",
                "GRPCTLSKit",
                "HelloGRPC",
                "PostgresTLSKit",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
