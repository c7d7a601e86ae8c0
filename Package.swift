// swift-tools-version: 6.1
//
// Module graph (arrows point down only):
//
//   idem (CLI)  ->  IdemEngine  ->  CZstd, CLZ4 (system libraries)
//
// The engine knows nothing of idempotency or networking; later layers
// (Idempotency, IdemServer) sit above it and only import downwards.
import PackageDescription

let package = Package(
    name: "Idem",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IdemEngine", targets: ["IdemEngine"]),
        .executable(name: "idem", targets: ["idem"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
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
        .executableTarget(
            name: "idem",
            dependencies: [
                "IdemEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "IdemEngineTests",
            dependencies: ["IdemEngine"]
        ),
    ]
)
