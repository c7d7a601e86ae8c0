// swift-tools-version: 6.1
// A package of its own (as swift-nio does), so the root's `swift build` and
// `swift test` never compile package-benchmark. Run from this directory:
//   swift package --disable-sandbox benchmark --target EngineBenchmarks
import PackageDescription

let package = Package(
    name: "IdemBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "IdemEngine", package: "main"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Macro workloads (millions of keys, partitions, tiers) that need
        // more set-up than package-benchmark's iterations suit.
        .executableTarget(
            name: "idem-workloads",
            dependencies: [
                .product(name: "IdemEngine", package: "main"),
                .product(name: "Idempotency", package: "main"),
            ],
            path: "Workloads"
        ),
    ]
)
