// swift-tools-version:6.1
//
// TLSKit: one TLS API over the system OpenSSL 3 or the system GnuTLS 3, chosen at
// build time by a package trait.
//
//   swift build                      -> OpenSSL (the default trait)
//   swift build --traits GnuTLS      -> GnuTLS only
//   swift build --traits OpenSSL,GnuTLS -> both backends, DefaultTLSBackend = OpenSSL
//   swift build --traits OpenSSL,NIO -> adds TLSKitNIO (SwiftNIO channel handlers)
//
// Every target is always compiled; a backend's Swift files are wrapped in `#if OpenSSL`
// / `#if GnuTLS`, and the C library is linked only when its trait is enabled.
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "TLSKit",
    products: [
        // What applications import: the core re-exported, the built-in backends by trait.
        .library(name: "TLSKit", targets: ["TLSKit"]),
        // The core alone: the contract, configuration, transports, sockets and the
        // backend SPI, with no backend and no C library; for backends in other packages
        // and applications that use only such a backend.
        .library(name: "TLSCore", targets: ["TLSCore"]),
        .executable(name: "tlsctl", targets: ["tlsctl"]),
        // SwiftNIO channel handlers; empty unless the NIO trait is enabled.
        .library(name: "TLSKitNIO", targets: ["TLSKitNIO"]),
        // The contract suite as a library: a backend's own test target runs every case
        // against its backend in a few lines (depends on TLSCore and swift-testing only).
        .library(name: "TLSKitConformance", targets: ["TLSKitConformance"]),
    ],
    traits: [
        .trait(name: "OpenSSL", description: "Use the system OpenSSL 3 (libssl, libcrypto)."),
        .trait(name: "GnuTLS", description: "Use the system GnuTLS 3 (libgnutls)."),
        .trait(name: "NIO", description: "Build TLSKitNIO: SwiftNIO channel handlers over the chosen backend (adds swift-nio)."),
        .default(enabledTraits: ["OpenSSL"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Used only by TLSKitNIO and its tests, and only with the NIO trait.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // The contract: protocols, configuration, errors, transports, sockets, the state
        // machine and the backend SPI (Sources/TLSCore/Backend). Builds with no trait.
        .target(name: "TLSCore", swiftSettings: strictSwift),

        // OpenSSL backend.
        .systemLibrary(
            name: "COpenSSL",
            path: "Backends/OpenSSL/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "TLSOpenSSL",
            dependencies: [
                "TLSCore",
                .target(name: "COpenSSL", condition: .when(traits: ["OpenSSL"])),
            ],
            path: "Backends/OpenSSL/TLSOpenSSL",
            swiftSettings: strictSwift
        ),

        // GnuTLS backend.
        .systemLibrary(
            name: "CGnuTLS",
            path: "Backends/GnuTLS/CGnuTLS",
            pkgConfig: "gnutls",
            providers: [.apt(["libgnutls28-dev"])]
        ),
        .target(
            name: "TLSGnuTLS",
            dependencies: [
                "TLSCore",
                .target(name: "CGnuTLS", condition: .when(traits: ["GnuTLS"])),
            ],
            path: "Backends/GnuTLS/TLSGnuTLS",
            swiftSettings: strictSwift
        ),

        // What applications import.
        .target(
            name: "TLSKit",
            dependencies: [
                "TLSCore",
                .target(name: "TLSOpenSSL", condition: .when(traits: ["OpenSSL"])),
                .target(name: "TLSGnuTLS", condition: .when(traits: ["GnuTLS"])),
            ],
            swiftSettings: strictSwift
        ),

        // SwiftNIO channel handlers (trait NIO; the sources are wrapped in `#if NIO`), over
        // the core alone: they drive any backend's TLSContext, built-in or not.
        .target(
            name: "TLSKitNIO",
            dependencies: [
                "TLSCore",
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["NIO"])),
                .product(name: "NIOTLS", package: "swift-nio", condition: .when(traits: ["NIO"])),
            ],
            swiftSettings: strictSwift
        ),

        .executableTarget(
            name: "tlsctl",
            dependencies: [
                "TLSKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),

        // The conformance suite: the contract's cases, written by rule (capabilities and
        // the sets the TLS RFCs allow), never by backend name; TLSCore and Testing only.
        .target(
            name: "TLSKitConformance",
            dependencies: ["TLSCore"],
            swiftSettings: strictSwift
        ),

        // What both test targets share: child processes with captured output, ports a
        // tool picked itself, and the gate that runs measuring suites alone.
        .target(
            name: "TLSKitTestSupport",
            dependencies: ["TLSKit"],
            path: "Tests/TestSupport",
            swiftSettings: strictSwift
        ),

        .testTarget(
            name: "TLSKitTests",
            dependencies: ["TLSKit", "TLSKitTestSupport"],
            swiftSettings: strictSwift
        ),

        // The conformance suite run against every built-in backend.
        .testTarget(
            name: "TLSKitConformanceTests",
            dependencies: ["TLSKit", "TLSKitConformance", "TLSKitTestSupport"],
            swiftSettings: strictSwift
        ),

        // TLSKitNIO's tests (trait NIO; the sources are wrapped in `#if NIO`).
        .testTarget(
            name: "TLSKitNIOTests",
            dependencies: [
                "TLSKit",
                "TLSKitNIO",
                "TLSKitTestSupport",
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["NIO"])),
                .product(name: "NIOTLS", package: "swift-nio", condition: .when(traits: ["NIO"])),
                .product(name: "NIOEmbedded", package: "swift-nio", condition: .when(traits: ["NIO"])),
                .product(name: "NIOPosix", package: "swift-nio", condition: .when(traits: ["NIO"])),
            ],
            swiftSettings: strictSwift
        ),

        // End-to-end tests that run the built `tlsctl` binary against real peers.
        .testTarget(
            name: "TLSCtlTests",
            dependencies: ["TLSKit", "tlsctl", "TLSKitTestSupport"],
            swiftSettings: strictSwift
        ),
    ]
)
