// swift-tools-version: 6.1
//
// Module graph (arrows point down only):
//
//   idem (CLI)  ->  Idempotency  ->  IdemEngine  ->  CZstd, CLZ4 (system libraries)
//                       |
//                       +-> Crypto (HMAC for issued keys)
//   RESP: the Redis protocol codec, pure (bytes in, commands/replies out),
//   depending on nothing; the server (next) joins it to the layers above.
//
// The engine knows nothing of idempotency or networking; each layer
// (Idempotency, later IdemServer) imports only downwards.
import PackageDescription

let package = Package(
    name: "Idem",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IdemEngine", targets: ["IdemEngine"]),
        .library(name: "Idempotency", targets: ["Idempotency"]),
        .library(name: "RESP", targets: ["RESP"]),
        .executable(name: "idem", targets: ["idem"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
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
        .target(
            name: "IdemEngine",
            dependencies: ["CZstd", "CLZ4"]
        ),
        .target(name: "RESP"),
        .target(
            name: "Idempotency",
            dependencies: [
                "IdemEngine",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "idem",
            dependencies: [
                "IdemEngine",
                "Idempotency",
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
            name: "IdempotencyTests",
            dependencies: ["Idempotency", "IdemEngine"]
        ),
    ]
)
