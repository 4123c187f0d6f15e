// swift-tools-version:6.1
//
// FakeTLS: a TLSKit backend in a package of its own, as any third party would ship one.
// It depends only on the root package's TLSCore product (its backend SPI) and, for its
// tests, on TLSKitConformance (the contract suite every backend runs) and TLSKitNIO
// (to run under SwiftNIO as an outside backend). No OpenSSL, no GnuTLS: the root
// package's NIO trait alone is enabled, not a backend trait.
//
// INSECURE, for tests: see Sources/FakeTLS/FakeTLSBackend.swift.
//
//   swift test --package-path Backends/Fake
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "FakeTLS",
    products: [
        .library(name: "FakeTLS", targets: ["FakeTLS"]),
    ],
    dependencies: [
        .package(name: "TLSKit", path: "../..", traits: ["NIO"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .target(
            name: "FakeTLS",
            dependencies: [.product(name: "TLSCore", package: "TLSKit")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "FakeTLSTests",
            dependencies: [
                "FakeTLS",
                .product(name: "TLSCore", package: "TLSKit"),
                .product(name: "TLSKitConformance", package: "TLSKit"),
                .product(name: "TLSKitNIO", package: "TLSKit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
