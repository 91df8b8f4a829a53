// swift-tools-version:6.0
import PackageDescription

// Target layout (see README "Architecture"):
//   SluiceRouting  pure routing core: request facts in, decision out (Foundation only)
//   SluiceConfig   YAML -> model -> validation (file:line:col) -> compiled table
//   SluiceMetrics  per-loop stat shards, histograms, Prometheus text (no NIO)
//   SluiceProxy    NIO listeners, forwarding, upstream pools, admin, test backend
//   sluice         the command line
/// Our modules confine mutable state to one event loop (or a lock) by design; the runtime
/// exclusivity checks on class properties cost ~13% of the proxy's instructions per request
/// (callgrind), so they are compiled out of Sluice's own targets. Static checks remain.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "SluiceRouting", swiftSettings: hotPath),
        .target(
            name: "SluiceConfig",
            dependencies: ["SluiceRouting", .product(name: "Yams", package: "Yams")]
        ),
        .target(name: "SluiceMetrics", swiftSettings: hotPath),
        .target(
            name: "SluiceProxy",
            dependencies: [
                "SluiceRouting", "SluiceConfig", "SluiceMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceProxy", "SluiceConfig", "SluiceRouting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SluiceRoutingTests", dependencies: ["SluiceRouting"]),
        .testTarget(name: "SluiceMetricsTests", dependencies: ["SluiceMetrics"]),
        .testTarget(
            name: "SluiceConfigTests",
            dependencies: ["SluiceConfig"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SluiceProxyTests",
            dependencies: [
                "SluiceProxy", "SluiceConfig", "SluiceRouting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Scripts"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
