import Forkwatch
import ForkwatchCore
import ForkwatchHTTP
import ForkwatchRPC
import ForkwatchServices

/// The services `forkwatch run NAME` and `forkwatch demo` know by name: a registry value the
/// CLI hands to its launcher (a library user builds their own).
public enum DemoServices {
    public static func registry() -> ServiceRegistry {
        var registry = ServiceRegistry()
        registry.register("idle", summary: "does nothing until told to stop") { context in
            IdleService(logger: context.logger)
        }
        registry.register(
            "crashy", summary: "dies after a random 0-3 s, by a random exit code or signal (shows crash loops)"
        ) { context in
            CrashyService(logger: context.logger)
        }
        registry.register(
            "scheduler",
            summary:
                "nova-scheduler's shape: periodic tasks (quick, slow, flaky) and a heartbeat into the services table",
            usesDatabase: true
        ) { context in
            ManagedService.create(
                in: context, binary: "forkwatch-scheduler", manager: SchedulerManager(),
                rpcServer: RPCServices.serverStarter(context.configuration))
        }
        registry.register(
            "api",
            summary:
                "nova's WSGIService: \(HTTPOptions.defaultAPIs.joined(separator: " + ")) and /healthcheck over SwiftNIO "
                + "on one shared socket (port \(WSGIService.defaultPort) unless set)",
            usesDatabase: true, defaultListen: ListenSpec(port: WSGIService.defaultPort)
        ) { context in
            WSGIService(context: context, apps: APICatalogue.apps)
        }
        return registry
    }
}
