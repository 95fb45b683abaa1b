// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "forkwatch",
    products: [
        .library(name: "Forkwatch", targets: ["Forkwatch"]),
        .library(name: "ForkwatchCore", targets: ["ForkwatchCore"]),
        .library(name: "ForkwatchServices", targets: ["ForkwatchServices"]),
        .executable(name: "forkwatch", targets: ["ForkwatchCLI"]),
        .executable(name: "forkwatch-bench", targets: ["ForkwatchBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Macros, globals and the fork+exec child path that Swift cannot (or must not) express.
        .target(name: "CForkwatch"),
        // Pure decisions: no syscalls, no clocks. Time is a parameter.
        .target(name: "ForkwatchCore"),
        // The launcher: the master's loop, workers, the control socket. No GRDB, no Yams, no NIO:
        // a library user who only wants forked workers pulls in swift-log and nothing else.
        .target(
            name: "Forkwatch",
            dependencies: ["CForkwatch", "ForkwatchCore", .product(name: "Logging", package: "swift-log")]
        ),
        // nova's service framework: a manager with periodic tasks and a heartbeat into the
        // `services` table (SQLite through GRDB, opened only in workers).
        .target(
            name: "ForkwatchServices",
            dependencies: [
                "Forkwatch", "ForkwatchCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // librabbitmq (rabbitmq-c) through a system library module (librabbitmq-dev), and the
        // AMQP calls of the RabbitMQ transport in C over it.
        .systemLibrary(name: "CRabbitMQ", providers: [.apt(["librabbitmq-dev"])]),
        // `-l:librabbitmq.a`: the static archive (see Sources/CRabbitMQ/module.modulemap).
        .target(
            name: "CForkwatchAMQP", dependencies: ["CRabbitMQ"], linkerSettings: [.linkedLibrary(":librabbitmq.a")]),
        // RPC on topic queues (oslo.messaging's model): client, server, dispatcher; the embedded
        // transport in the services database.
        .target(
            name: "ForkwatchRPC",
            dependencies: [
                "Forkwatch", "ForkwatchServices", "ForkwatchCore", "CForkwatch", "CForkwatchAMQP",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP API service (nova's WSGIService) on SwiftNIO. NIO starts only in a worker, after fork.
        .target(
            name: "ForkwatchHTTP",
            dependencies: [
                "Forkwatch", "ForkwatchCore", "CForkwatch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The demo's services by name (idle, crashy, scheduler, api) and the apps the api serves.
        .target(
            name: "ForkwatchDemo",
            dependencies: [
                "Forkwatch", "ForkwatchCore", "ForkwatchServices", "ForkwatchRPC", "ForkwatchHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // ncurses through a system library module (libncurses-dev): shim.h wraps macros and globals.
        .systemLibrary(name: "CNcurses", providers: [.apt(["libncurses-dev"])]),
        // The dashboard: a pure model rendered into a character grid, an ncurses screen, a control client.
        .target(name: "ForkwatchTUI", dependencies: ["ForkwatchCore", "Forkwatch", "CNcurses", "CForkwatch"]),
        .executableTarget(
            name: "ForkwatchCLI",
            dependencies: [
                "Forkwatch", "ForkwatchCore", "ForkwatchTUI", "ForkwatchHTTP", "ForkwatchRPC", "ForkwatchServices",
                "ForkwatchDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // The configuration file is the CLI's: the library takes a LauncherConfiguration.
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // A program embedding the launcher as a library user would (its own swift-log bootstrap);
        // the process tests run it.
        .executableTarget(
            name: "ForkwatchEmbeddedExample",
            dependencies: ["Forkwatch", "ForkwatchCore", .product(name: "Logging", package: "swift-log")]
        ),
        // Figures that need forkwatch's own code (the renderer's frame time): bench/dashboard.py.
        .executableTarget(
            name: "ForkwatchBench",
            dependencies: ["Forkwatch", "ForkwatchCore", "ForkwatchTUI", "ForkwatchRPC", "ForkwatchServices"]
        ),
        .testTarget(name: "ForkwatchCoreTests", dependencies: ["ForkwatchCore", "CForkwatch"]),
        .testTarget(name: "ForkwatchTUITests", dependencies: ["ForkwatchTUI", "ForkwatchCore"]),
        .testTarget(
            name: "ForkwatchTests",
            dependencies: [
                "Forkwatch", "ForkwatchCore", "CForkwatch", "ForkwatchRPC", "ForkwatchServices",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ForkwatchHTTPTests",
            dependencies: [
                "ForkwatchHTTP", "Forkwatch", "ForkwatchCore", "ForkwatchDemo", "ForkwatchServices", "ForkwatchCLI",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)
