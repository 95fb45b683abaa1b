import Foundation
import Glibc

/// A private RabbitMQ node for the tests (Tests/Fixtures/rabbitmq/node.sh), started on first
/// use, stopped when the test process exits; and a Python venv with oslo.messaging 18.x.
enum RabbitNode {
    static let fixtures: String = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()  // ForkwatchTests
        url.deleteLastPathComponent()  // Tests
        return url.appendingPathComponent("Fixtures/rabbitmq").path
    }()

    /// Debian's rabbitmq-server is installed (`.ci/run` installs it; otherwise the tests are skipped).
    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/lib/rabbitmq/bin/rabbitmq-server") }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<(url: String, directory: String), TestFailure>?

    /// `rabbit://guest:guest@127.0.0.1:PORT/` of the shared node.
    static func url() throws -> String {
        try lock.withLock {
            if started == nil {
                let directory = NSTemporaryDirectory() + "forkwatch-rmq-\(UUID().uuidString.prefix(8))"
                do {
                    let result = try runToCompletion(
                        ["/bin/bash", fixtures + "/node.sh", "start", directory], timeout: 90)
                    let amqp = result.output.split(separator: "\n").last { $0.hasPrefix("amqp://") }.map(String.init)
                    if result.status == 0, let amqp {
                        started = .success(("rabbit://" + amqp.dropFirst("amqp://".count), directory))
                        stopAtExit(directory)
                    } else {
                        started = .failure(
                            TestFailure("node.sh start: exit \(result.status): \(result.output.suffix(1500))"))
                    }
                } catch {
                    started = .failure(TestFailure("node.sh start: \(error)"))
                }
            }
            return try started!.get().url
        }
    }

    /// rabbitmqctl on the shared node.
    static func ctl(_ arguments: [String]) throws -> String {
        guard case .success(let node)? = lock.withLock({ started }) else { throw TestFailure("no node") }
        return try runToCompletion(
            ["/bin/bash", fixtures + "/node.sh", "ctl", node.directory] + arguments, timeout: 30
        ).output
    }

    nonisolated(unsafe) private static var nodeDirectory = ""

    private static func stopAtExit(_ directory: String) {
        nodeDirectory = directory
        atexit {
            _ = try? runToCompletion(
                ["/bin/bash", RabbitNode.fixtures + "/node.sh", "stop", RabbitNode.nodeDirectory], captureOutput: false,
                timeout: 30)
        }
    }

    /// The python of a venv with oslo.messaging (made once per machine, reused after).
    static func python() throws -> String {
        try lock.withLock {
            let result = try runToCompletion(
                ["/bin/bash", fixtures + "/venv.sh", NSTemporaryDirectory() + "forkwatch-omvenv"], timeout: 300)
            guard result.status == 0, let path = result.output.split(separator: "\n").last.map(String.init),
                path.hasPrefix("/")
            else {
                throw TestFailure("venv.sh: exit \(result.status): \(result.output.suffix(1500))")
            }
            return path
        }
    }
}
