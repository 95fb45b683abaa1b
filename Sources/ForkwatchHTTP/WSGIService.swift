import Forkwatch
import ForkwatchCore
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// nova's `WSGIService`: the `enabled_apis` apps on the socket the master bound before the fork,
/// adopted by SwiftNIO in this worker (`ServerBootstrap.withBoundSocket`), so every worker
/// accepts from one kernel queue. Everything NIO starts here, after the fork.
///
/// `stop()` is the graceful stop: the listening channel closes (the master and the other workers
/// keep the socket, so nothing queued is lost), idle keep-alive connections close, requests in
/// flight finish and their connections close after the response; `wait()` returns when the
/// last connection has gone. The master's graceful_shutdown_timeout bounds it.
public final class WSGIService: Service, @unchecked Sendable {
    /// nova's default port for the compute API (`osapi_compute_listen_port`), when none is configured.
    public static let defaultPort = 8774

    /// Builds the apps `enabled_apis` names (the URL map), in the worker, from its options.
    public typealias AppsFactory = @Sendable (_ enabledAPIs: [String], _ context: WorkerContext) throws -> URLMap

    private let context: WorkerContext
    private var spec: ServiceSpec { context.spec }
    private let apps: AppsFactory
    private let log: Logger
    private let stopped = StopLatch()
    private var group: MultiThreadedEventLoopGroup?
    private var threadPool: NIOThreadPool?
    private var quiesce: ServerQuiescingHelper?
    private var gate: AcceptGate?

    /// `context`: the worker's spec (its `http` options, its worker count), its inherited socket
    /// and accept lock. `apps`: the apps to serve, built in `start()`.
    public init(context: WorkerContext, apps: @escaping AppsFactory) {
        self.context = context
        self.apps = apps
        log = context.logger
    }

    public func start() throws {
        let options = spec.http
        let urlMap: URLMap
        do { urlMap = try apps(options.enabledAPIs, context) } catch { throw BootError("enabled_apis: \(error)") }
        let tls: NIOSSLContext?
        do { tls = try TLSSetup.serverContext(options) } catch { throw BootError("\(error)") }
        // The inherited socket, or (no master: --no-fork) one bound here.
        let socket: Int32
        if let inherited = context.listenFD {
            socket = dup(inherited)  // NIO closes its descriptor on stop; the inherited one stays ours
        } else {
            do { socket = try Posix.listenTCP(spec.listen ?? ListenSpec(port: Self.defaultPort)).fd } catch {
                throw BootError("\(error)")
            }
        }
        guard socket >= 0 else { throw BootError("dup of the listening socket failed") }

        // One event loop per worker: workers are the parallelism, as with nginx and eventlet.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let quiesce = ServerQuiescingHelper(group: group)
        self.group = group
        self.threadPool = threadPool
        self.quiesce = quiesce

        var accessLog: (@Sendable (String) -> Void)?
        if options.accessLog {
            let log = self.log
            accessLog = { line in log.info("\(line)") }
        }
        func timeAmount(_ seconds: Double) -> TimeAmount? { seconds > 0 ? .nanoseconds(Int64(seconds * 1e9)) : nil }
        let server = ServerContext(
            urlMap: urlMap, threadPool: threadPool,
            options: ResolvedHTTPOptions(
                keepAlive: options.keepAlive, maxHeaderLine: options.maxHeaderLine, maxBody: 1 << 20,
                clientSocketTimeout: timeAmount(options.clientSocketTimeout),
                clientHeaderTimeout: timeAmount(options.clientHeaderTimeout)),
            workerPid: String(getpid()), accessLog: accessLog, drainGrace: .milliseconds(500))
        let poolSize = options.poolSize
        let gate: AcceptGate
        do {
            gate = try AcceptGate(sharedLock: context.acceptLockFD, poolSize: poolSize, workers: spec.workers, log: log)
        } catch {
            throw BootError("accept lock: \(error)")
        }
        self.gate = gate
        let decoderLimits = {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = options.maxHeaderLine
            return limits
        }()

        let bootstrap = ServerBootstrap(group: group)
            // One accept per turn, and only when the gate asks (see AcceptGate).
            .serverChannelOption(ChannelOptions.maxMessagesPerRead, value: 1)
            .serverChannelOption(ChannelOptions.autoRead, value: false)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    try channel.pipeline.syncOperations.addHandler(AcceptGateHandler(gate: gate))
                }
            }
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
                    // NIO's request decoder (llhttp, with max_header_line as its field limit);
                    // responses are written by APIRequestHandler itself.
                    try pipeline.addHandler(
                        ByteToMessageHandler(
                            HTTPRequestDecoder(
                                leftOverBytesStrategy: .dropBytes,
                                informationalResponseStrategy: .drop,
                                limitConfiguration: decoderLimits)))
                    try pipeline.addHandler(APIRequestHandler(server: server))
                }
            }
        do {
            gate.start(try bootstrap.withBoundSocket(socket).wait())
        } catch {
            throw BootError("cannot serve on the inherited socket: \(error)")
        }
        let address = Posix.localAddress(socket) ?? spec.listen.map { "\($0.host):\($0.port)" } ?? "?"
        let scheme = tls == nil ? "http" : "https"
        let mounts = options.enabledAPIs.map { api in
            "\(api) \(urlMap.entries.first { $0.app.name == api }?.prefix ?? "?")"
        }
        log.info(
            "listening on \(scheme)://\(address)/ (\(mounts.joined(separator: ", ")), healthcheck /healthcheck; pool_size \(poolSize), keep_alive \(options.keepAlive ? "on" : "off"), client_socket_timeout \(options.clientSocketTimeout == 0 ? "none" : "\(options.clientSocketTimeout) s"), client_header_timeout \(options.clientHeaderTimeout == 0 ? "none" : "\(options.clientHeaderTimeout) s"))"
        )
        // Once per service start, not once per worker: the first worker (slot 0) says it.
        if context.slot == 0, let warning = Self.exposureWarning(address: address, options: options) {
            log.warning("\(warning)")
        }
    }

    /// A warning for an API any host can reach and no one has to authenticate to (forkwatch
    /// has no keystone): anything but a loopback address, unless clients must present a
    /// certificate (`ca_file`). nil when there is nothing to say.
    static func exposureWarning(address: String, options: HTTPOptions) -> String? {
        guard options.caFile == nil else { return nil }
        // "127.0.0.1:8774", "[::1]:8774"
        var host = address.split(separator: ":", omittingEmptySubsequences: false).dropLast().joined(separator: ":")
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasPrefix("127.") || host == "::1" || host.hasPrefix("::ffff:127.") {
            return nil
        }
        let reach = host == "0.0.0.0" || host == "::" ? "every address of this host" : host
        return
            "the API listens on \(address) (\(reach)) with no authentication: anyone who can reach it can create and delete servers; "
            + "listen on 127.0.0.1, or require client certificates (ca_file), or put an authenticating proxy in front"
    }

    public func wait() {
        stopped.wait()
        try? group?.syncShutdownGracefully()
        try? threadPool?.syncShutdownGracefully()
    }

    public func stop() {
        guard let quiesce, let group else {
            stopped.release()
            return
        }
        gate?.stop()  // let go of the accept lock first: the other workers take the queue
        log.info("draining: no new connections; finishing requests in flight")
        let done = group.next().makePromise(of: Void.self)
        done.futureResult.whenComplete { [stopped, log] _ in
            log.info("drained: every connection closed")
            stopped.release()
        }
        quiesce.initiateShutdown(promise: done)
    }

    public func reset() {
        log.info("SIGHUP: nothing to reload in place (use restart_method rolling to pick up new options)")
    }
}
