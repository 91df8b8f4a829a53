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
/// The routing core's generic entry point (`RouteTable.decide<Facts, Random>`) is called from
/// SluiceProxy; cross-module optimisation lets the proxy specialise it for its own facts type
/// and generator instead of calling it through generic metadata and value witnesses.
let routingCore: [SwiftSetting] = hotPath + [.unsafeFlags(["-cross-module-optimization"])]
/// The release executable on Linux is linked by lld, lean in three ways (README "Performance",
/// scenario 5, has the measurements):
/// - without `-export-dynamic` (which the Swift driver adds): nothing looks Sluice's symbols up
///   at run time, and the exported table (~1.8 MiB of .dynsym, .dynstr, .gnu.hash) was paged in
///   at start-up;
/// - with packed relative relocations (DT_RELR): the 2.4 MiB of .rela.dyn that the loader reads
///   once at start-up and that then stayed resident shrink to ~40 KiB. Only where the build
///   host's glibc has DT_RELR (2.36+: Debian 12, Ubuntu 24.04); lld then marks the binary so
///   that an older loader refuses it with a clear message instead of running it unrelocated;
/// - with the functions Sluice runs laid out together (`Sources/sluice/HotFunctions.order`,
///   made by `bench/hot-functions.sh`): the kernel maps code in 64 KiB groups around each page
///   touched, and hot code scattered over 21 MiB kept ~4 MiB more of the binary resident.
let leanExecutable: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "--no-export-dynamic"] + packedRelocations + [
        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/sluice/HotFunctions.order",
        "-Xlinker", "--no-warn-symbol-ordering",
    ], .when(platforms: [.linux], configuration: .release)),
]

#if canImport(Glibc)
import Glibc
var packedRelocations: [String] {
    var text = [CChar](repeating: 0, count: 64) // "glibc 2.36"
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &text, text.count) > 0 else { return [] }
    let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    let version = String(decoding: bytes, as: UTF8.self).split(separator: " ").last?
        .split(separator: ".").compactMap { Int($0) } ?? []
    guard version.count >= 2, (version[0], version[1]) >= (2, 36) else { return [] }
    return ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"]
}
#else
var packedRelocations: [String] { [] }
#endif

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
        .target(name: "SluiceRouting", swiftSettings: routingCore),
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
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
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
            ],
            exclude: ["HotFunctions.order"],
            linkerSettings: leanExecutable
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
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Scripts"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
