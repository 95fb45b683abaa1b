/// What a method of a manager receives: the request context (oslo's `ctxt`, with its
/// `client_timeout`) and the keyword arguments, read with typed accessors. A missing or mistyped
/// argument throws `RPCArgumentError`, which the caller gets back as Python's `TypeError`.
public struct RPCInvocation: Sendable {
    public let method: String
    public let context: [String: JSONValue]
    public let args: [String: JSONValue]

    public init(method: String, context: [String: JSONValue], args: [String: JSONValue]) {
        self.method = method
        self.context = context
        self.args = args
    }

    public func value(_ name: String) throws(RPCArgumentError) -> JSONValue {
        guard let value = args[name] else { throw RPCArgumentError("\(method)() missing required argument: '\(name)'") }
        return value
    }

    public func string(_ name: String) throws(RPCArgumentError) -> String {
        guard let text = try value(name).string else {
            throw RPCArgumentError("\(method)(): '\(name)' must be a string")
        }
        return text
    }

    public func int(_ name: String) throws(RPCArgumentError) -> Int {
        guard let number = try value(name).int else {
            throw RPCArgumentError("\(method)(): '\(name)' must be an integer")
        }
        return number
    }

    public func double(_ name: String) throws(RPCArgumentError) -> Double {
        guard let number = try value(name).double else {
            throw RPCArgumentError("\(method)(): '\(name)' must be a number")
        }
        return number
    }

    public func optionalString(_ name: String) throws(RPCArgumentError) -> String? {
        guard let value = args[name], value != .null else { return nil }
        guard let text = value.string else { throw RPCArgumentError("\(method)(): '\(name)' must be a string") }
        return text
    }

    /// Arguments this method does not take: Python's "unexpected keyword argument".
    public func only(_ names: Set<String>) throws(RPCArgumentError) {
        if let extra = args.keys.sorted().first(where: { !names.contains($0) }) {
            throw RPCArgumentError("\(method)() got an unexpected keyword argument '\(extra)'")
        }
    }
}

public struct RPCArgumentError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A method a manager offers over RPC.
public struct RPCMethod: Sendable {
    public let name: String
    public let run: @Sendable (RPCInvocation) throws -> JSONValue

    public init(_ name: String, _ run: @escaping @Sendable (RPCInvocation) throws -> JSONValue) {
        self.name = name
        self.run = run
    }
}

/// oslo's endpoint: its target's namespace and version, and its methods.
public struct RPCEndpoint: Sendable {
    public var namespace: String?
    public var version: String
    public var methods: [String: RPCMethod]

    public init(namespace: String? = nil, version: String = "1.0", methods: [RPCMethod]) {
        self.namespace = namespace
        self.version = version
        self.methods = Dictionary(methods.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }
}

/// oslo's `RPCDispatcher.dispatch`: the first endpoint whose namespace matches and whose version
/// is compatible runs the method; `_private` names are refused; otherwise NoSuchMethod or
/// UnsupportedVersion. Errors thrown by the method become failures in oslo's format, and so does
/// a malformed request, at the step where Python raises on it: a method that is not a string at
/// the first compatible endpoint (TypeError), args that are not an object once the method is
/// found (AttributeError).
public enum RPCDispatcher {
    public static func dispatch(_ request: RPCRequest, to endpoints: [RPCEndpoint]) -> Result<JSONValue, RPCFailure> {
        let version = request.version ?? "1.0"
        var compatible = false
        for endpoint in endpoints where endpoint.namespace == request.namespace {
            guard RPCVersion.isCompatible(current: endpoint.version, requested: version) else { continue }
            compatible = true
            if let malformation = request.malformation, case .method = malformation {
                return .failure(.malformed(malformation))
            }
            guard !request.method.hasPrefix("_"), let method = endpoint.methods[request.method] else { continue }
            if let malformation = request.malformation, case .args = malformation {
                return .failure(.malformed(malformation))
            }
            var context = request.context
            context["client_timeout"] = request.callMonitorTimeout.map(JSONValue.number) ?? .null
            do {
                return .success(
                    try method.run(RPCInvocation(method: request.method, context: context, args: request.args)))
            } catch let error as RPCArgumentError {
                return .failure(RPCFailure(className: "TypeError", module: "builtins", message: error.description))
            } catch let error as RPCFailure {
                return .failure(error)
            } catch {
                return .failure(
                    RPCFailure(className: String(describing: type(of: error)), module: "forkwatch", message: "\(error)")
                )
            }
        }
        return .failure(
            compatible ? .noSuchMethod(request.method) : .unsupportedVersion(version, method: request.method))
    }
}

/// Per-method counters of one worker's RPC server: what the `rpc_stats` event carries.
public struct RPCMethodStats: Hashable, Sendable {
    public var method: String
    public var handled: Int
    public var failures: Int
    public var inFlight: Int
    /// Handling time in seconds over the recent calls (nil before the first).
    public var p50: Double?
    public var p95: Double?

    public init(
        method: String, handled: Int = 0, failures: Int = 0, inFlight: Int = 0, p50: Double? = nil, p95: Double? = nil
    ) {
        self.method = method
        self.handled = handled
        self.failures = failures
        self.inFlight = inFlight
        self.p50 = p50
        self.p95 = p95
    }
}

/// Keeps `RPCMethodStats` for each method: counts since start, percentiles over the last 512
/// handling times. Not thread-safe: its owner locks.
public struct RPCStatsRecorder: Sendable {
    private var counts: [String: (handled: Int, failures: Int, inFlight: Int)] = [:]
    private var samples: [String: [Double]] = [:]
    private var next: [String: Int] = [:]
    private static let window = 512

    public init() {}

    public mutating func began(_ method: String) { counts[method, default: (0, 0, 0)].inFlight += 1 }

    public mutating func ended(_ method: String, seconds: Double, failed: Bool) {
        var count = counts[method, default: (0, 0, 0)]
        count.inFlight = max(0, count.inFlight - 1)
        count.handled += 1
        if failed { count.failures += 1 }
        counts[method] = count
        var ring = samples[method, default: []]
        if ring.count < Self.window {
            ring.append(seconds)
        } else {
            let slot = next[method, default: 0]
            ring[slot] = seconds
            next[method] = (slot + 1) % Self.window
        }
        samples[method] = ring
    }

    public var snapshot: [RPCMethodStats] {
        counts.keys.sorted().map { method in
            let count = counts[method]!
            let sorted = (samples[method] ?? []).sorted()
            func percentile(_ p: Double) -> Double? {
                guard !sorted.isEmpty else { return nil }
                return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
            }
            return RPCMethodStats(
                method: method, handled: count.handled, failures: count.failures, inFlight: count.inFlight,
                p50: percentile(0.5), p95: percentile(0.95))
        }
    }
}
