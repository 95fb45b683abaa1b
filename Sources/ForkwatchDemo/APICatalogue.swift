import Forkwatch
import ForkwatchCore
import ForkwatchHTTP
import ForkwatchRPC
import ForkwatchServices
import NIOConcurrencyHelpers

/// The apps `enabled_apis` may name, and the URL map a worker serves: every enabled app at its
/// mount points, `/healthcheck`, and `/` listing them.
public enum APICatalogue {
    public static let names: [(name: String, summary: String)] = [
        ("osapi_compute", "a compute-style JSON API at /v2.1: servers (in the services database) and flavors"),
        ("metadata", "a metadata-style API at /openstack: versions, meta_data.json, network_data.json"),
    ]

    /// The first name `enabled_apis` has that no app answers to, or nil.
    public static func unknown(in enabled: [String]) -> String? {
        enabled.first { name in !names.contains { $0.name == name } }
    }

    /// The URL map of a worker of `context`'s service (WSGIService's `apps`): the services
    /// database and the transport its options name, opened on first use.
    @Sendable public static func apps(enabledAPIs: [String], context: WorkerContext) throws -> URLMap {
        if let unknown = unknown(in: enabledAPIs) { throw UnknownAppError(name: unknown) }
        let configuration = context.configuration
        let database = SharedDatabase(
            path: configuration.database ?? ServicesStore.defaultPath,
            transportURL: configuration.transportURL, controlExchange: configuration.controlExchange)
        return urlMap(enabled: enabledAPIs, database: database, host: configuration.host ?? ManagedService.hostname())
    }

    struct UnknownAppError: Error, CustomStringConvertible {
        let name: String
        var description: String { "no app '\(name)'" }
    }

    static func urlMap(enabled: [String], database: SharedDatabase, host: String) -> URLMap {
        var apps: [any APIApp] = []
        for name in enabled {
            switch name {
            case "osapi_compute": apps.append(ComputeAPI(database: database, host: host))
            case "metadata": apps.append(MetadataAPI(host: host))
            default: break  // refused before the fork
            }
        }
        return URLMap.serving(apps)
    }
}

/// The services database, opened on first use in the worker (never in the master) and shared
/// by the thread pool's threads (GRDB's queue serialises them).
final class SharedDatabase: @unchecked Sendable {
    private let path: String
    private let lock = NIOLock()
    private var store: ServicesStore?
    private var schedulerClient: RPCClient?

    /// How long a POST waits for a scheduler to answer `select_destinations` (nova's API casts
    /// to the conductor and returns at once; this one answers with the outcome, so it bounds it).
    let schedulingTimeout: Double

    /// The scheduler's RPC API (nova's SchedulerAPI, version 4.x), on the embedded transport.
    func scheduler() throws -> RPCClient {
        try lock.withLock {
            if let client = schedulerClient { return client }
            let transport = try RPCTransports.make(url: transportURL, database: path, controlExchange: controlExchange)
            let client = RPCClient(
                transport: transport, target: RPCTarget(topic: "scheduler", version: "4.0"),
                timeout: schedulingTimeout)
            schedulerClient = client
            return client
        }
    }

    private let transportURL: String?
    private let controlExchange: String

    init(
        path: String, transportURL: String? = nil, controlExchange: String = "openstack", schedulingTimeout: Double = 10
    ) {
        self.path = path
        self.transportURL = transportURL
        self.controlExchange = controlExchange
        self.schedulingTimeout = schedulingTimeout
    }

    /// Runs `body` with the store; a database error becomes a 500 with nova's fault body.
    func use(_ body: (ServicesStore) throws -> APIResponse) -> APIResponse {
        do {
            let store = try lock.withLock {
                if let store = self.store { return store }
                let opened = try ServicesStore(path: path)
                self.store = opened
                return opened
            }
            return try body(store)
        } catch {
            return .fault(500, "computeFault", "The database failed: \(error)")
        }
    }
}
