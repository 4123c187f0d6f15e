// swift-tools-version:6.1
//
// libFuzzer targets for TLSKit, one build per backend (the dependency on the root
// package passes the backend trait through). Build and run them with Scripts/fuzz:
//
//   Scripts/fuzz OpenSSL 30      # every target, 30 s each, OpenSSL backend
//   Scripts/fuzz GnuTLS 30       # the same over GnuTLS
//
// By hand:
//   swift build --package-path Fuzz --scratch-path .build-fuzz-openssl --traits OpenSSL \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
//
// (lld, because SwiftPM links `<Target>_main` as main with --defsym and gold fails on
// the clash with libFuzzer's own main; each `<Target>_main` runs LLVMFuzzerRunDriver.)
import PackageDescription

let settings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "TLSKitFuzz",
    traits: [
        .trait(name: "OpenSSL", description: "Fuzz the OpenSSL backend."),
        .trait(name: "GnuTLS", description: "Fuzz the GnuTLS backend."),
        .default(enabledTraits: ["OpenSSL"]),
    ],
    dependencies: [
        .package(name: "TLSKit", path: "..", traits: [
            .trait(name: "OpenSSL", condition: .when(traits: ["OpenSSL"])),
            .trait(name: "GnuTLS", condition: .when(traits: ["GnuTLS"])),
        ]),
    ],
    targets: [
        .target(name: "CFuzzerDriver"),
        // TLSKit for DefaultTLSBackend; TLSCore declared for the SPI the harness reads (the wire reader).
        .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver", .product(name: "TLSKit", package: "TLSKit"),
                                                    .product(name: "TLSCore", package: "TLSKit")],
                swiftSettings: settings),
        .executableTarget(name: "FuzzServerHandshake", dependencies: ["FuzzSupport"], swiftSettings: settings),
        .executableTarget(name: "FuzzClientHandshake", dependencies: ["FuzzSupport"], swiftSettings: settings),
        .executableTarget(name: "FuzzRecords", dependencies: ["FuzzSupport"], swiftSettings: settings),
        .executableTarget(name: "FuzzConfiguration", dependencies: ["FuzzSupport"], swiftSettings: settings),
        .executableTarget(name: "FuzzWire", dependencies: ["FuzzSupport"], swiftSettings: settings),
    ]
)
