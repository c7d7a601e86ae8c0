// swift-tools-version: 6.1
//
// Module graph (arrows point down only):
//
//   idem (CLI) -> IdemServer -> Idempotency -> IdemEngine -> CZstd, CLZ4 (system libraries),
//                                                           CIdemPosix, CIdemHardware (header-only:
//                                                           Linux calls, CRC-32C instructions)
//     +-> CJemalloc (Linux: the server's allocator, as Redis's; the libraries
//                    leave the allocator to whoever embeds them)
//                    |             |
//                    |             +-> Crypto (HMAC for issued keys)
//                    +-> RESP (the Redis protocol codec: pure, bytes in,
//                    |         commands/replies out, depends on nothing)
//                    +-> CIdemPosix (the RESP port runs on event loops of its own: epoll)
//                    +-> NIO (the HTTP metrics endpoint, the blocking pool), Logging,
//                        Metrics/Prometheus, ServiceLifecycle
//
// The engine knows nothing of idempotency or networking; the codec knows
// nothing of channels; each layer imports only downwards.
import PackageDescription

let package = Package(
    name: "Idem",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IdemEngine", targets: ["IdemEngine"]),
        .library(name: "Idempotency", targets: ["Idempotency"]),
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "IdemServer", targets: ["IdemServer"]),
        .executable(name: "idem", targets: ["idem"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .systemLibrary(
            name: "CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]
        ),
        // Header-only wrappers of Linux calls Glibc does not import (preadv2, getrandom).
        .systemLibrary(name: "CIdemPosix"),
        // Header-only: CPU instructions Swift cannot name (CRC-32C).
        .systemLibrary(name: "CIdemHardware"),
        .target(
            name: "IdemEngine",
            dependencies: ["CZstd", "CLZ4", "CIdemHardware",
                           .target(name: "CIdemPosix", condition: .when(platforms: [.linux]))]
        ),
        .target(name: "RESP"),
        .target(
            name: "Idempotency",
            dependencies: [
                "IdemEngine",
                .target(name: "CIdemPosix", condition: .when(platforms: [.linux])),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "IdemServer",
            dependencies: [
                "IdemEngine",
                "Idempotency",
                "RESP",
                // The RESP port's event loop (epoll, eventfd, sockets).
                .target(name: "CIdemPosix", condition: .when(platforms: [.linux])),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "idem",
            dependencies: [
                "IdemEngine",
                "Idempotency",
                "IdemServer",
                .target(name: "CJemalloc", condition: .when(platforms: [.linux])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "IdemEngineTests",
            dependencies: ["IdemEngine"]
        ),
        .testTarget(
            name: "RESPTests",
            dependencies: ["RESP"]
        ),
        .testTarget(
            name: "IdemServerTests",
            dependencies: [
                "IdemServer", "Idempotency", "IdemEngine", "RESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IdempotencyTests",
            dependencies: ["Idempotency", "IdemEngine"]
        ),
    ]
)
