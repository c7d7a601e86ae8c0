// swift-tools-version: 5.4
// libFuzzer targets. swift-tools-version 5.4 on purpose: from 5.5 on,
// SwiftPM renames an executable's entry point and libFuzzer's `main` is
// never linked. Build and run: see README.md beside this file.
import PackageDescription

let package = Package(
    name: "IdemFuzz",
    dependencies: [
        .package(name: "Idem", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "FuzzWALReplay",
            dependencies: [.product(name: "IdemEngine", package: "Idem")]
        ),
        .executableTarget(
            name: "FuzzTableReader",
            dependencies: [.product(name: "IdemEngine", package: "Idem")]
        ),
        .executableTarget(
            name: "FuzzRESPParser",
            dependencies: [.product(name: "RESP", package: "Idem")]
        ),
        .executableTarget(
            name: "FuzzIdempotencyRecord",
            dependencies: [.product(name: "Idempotency", package: "Idem")]
        ),
        .executableTarget(
            name: "FuzzCommands",
            dependencies: [
                .product(name: "IdemServer", package: "Idem"),
                .product(name: "RESP", package: "Idem"),
            ]
        ),
        .executableTarget(
            name: "FuzzManifest",
            dependencies: [.product(name: "IdemEngine", package: "Idem")]
        ),
    ]
)
