// swift-tools-version:6.1
//
// TLSKit benchmarks: a package of its own, so that the library gains no dependency.
// It measures the same work four ways, over the same C libraries:
//
//   bench-tlskit     TLSKit, OpenSSL or GnuTLS backend (both traits enabled here)
//   bench-c-openssl  the same work directly over libssl (the physical limit)
//   bench-c-gnutls   the same work directly over libgnutls (the physical limit)
//   bench-nio        NIO handlers: swift-nio-ssl (BoringSSL), for comparison, or with
//                    --handler tlskit TLSKitNIO over either backend
//
// plus libBenchMallocCounter.so, an LD_PRELOAD malloc counter. `Benchmarks/run` builds
// everything in release and prints one table; see Docs/performance.md.
import PackageDescription

let cOptimised: [CSetting] = [.unsafeFlags(["-O2"])]

let package = Package(
    name: "TLSKitBenchmarks",
    products: [
        .library(name: "BenchMallocCounter", type: .dynamic, targets: ["MallocCounter"]),
    ],
    dependencies: [
        .package(name: "TLSKit", path: "..", traits: ["OpenSSL", "GnuTLS", "NIO"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Shared C helpers: arguments, clocks, loopback sockets, memory readings.
        .target(name: "BenchCommon", cSettings: cOptimised),
        // The LD_PRELOAD malloc counter (never linked into a benchmark program).
        .target(name: "MallocCounter", cSettings: cOptimised),
        .executableTarget(
            name: "bench-c-openssl",
            dependencies: ["BenchCommon"],
            cSettings: cOptimised,
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        .executableTarget(
            name: "bench-c-gnutls",
            dependencies: ["BenchCommon"],
            cSettings: cOptimised,
            linkerSettings: [.linkedLibrary("gnutls")]
        ),
        // Swift helpers shared by bench-tlskit and bench-nio.
        .target(name: "BenchSupport", dependencies: ["BenchCommon"], swiftSettings: [.swiftLanguageMode(.v6)]),
        // TLSKit contexts, made alike by bench-tlskit and bench-nio --handler tlskit.
        .target(
            name: "BenchTLSKit",
            dependencies: ["BenchSupport", .product(name: "TLSKit", package: "TLSKit")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "bench-tlskit",
            dependencies: ["BenchSupport", "BenchCommon", "BenchTLSKit", .product(name: "TLSKit", package: "TLSKit")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "bench-nio",
            dependencies: [
                "BenchSupport",
                "BenchTLSKit",
                .product(name: "TLSKit", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
