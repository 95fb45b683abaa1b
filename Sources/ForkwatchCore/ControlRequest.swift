/// A request on the control socket: one JSON object per line, `{"op": "...", ...}`.
/// Documented in docs/control.md.
public enum ControlRequest: Hashable, Sendable {
    /// A snapshot line, then every event as it happens.
    case subscribe
    /// One snapshot line, then the connection stays open for more requests.
    case status
    /// Send `signal` to `pid`, which must be a live worker of this master.
    case signal(pid: Int32, signal: Signal)
    case scale(service: String, workers: Int)
    /// SIGHUP's reload, by restart_method.
    case reload
    case stop(mode: StopMode)

    /// The longest request line the master reads; longer ones are refused and the client dropped.
    public static let maxLineBytes = 4096

    public var op: String {
        switch self {
        case .subscribe: return "subscribe"
        case .status: return "status"
        case .signal: return "signal"
        case .scale: return "scale"
        case .reload: return "reload"
        case .stop: return "stop"
        }
    }

    /// Parses one request line; the error is the message sent back.
    public static func parse(_ line: String) -> Result<ControlRequest, ControlError> {
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch {
            return .failure(ControlError("malformed JSON: \(error.message) at byte \(error.offset)"))
        }
        guard case .object = json else {
            return .failure(ControlError("a request is a JSON object like {\"op\":\"status\"}"))
        }
        guard let op = json["op"]?.string else { return .failure(ControlError("missing \"op\" (one of \(ops))")) }
        switch op {
        case "subscribe": return .success(.subscribe)
        case "status": return .success(.status)
        case "reload": return .success(.reload)
        case "signal":
            guard let pid = json["pid"]?.int32, pid > 0 else {
                return .failure(ControlError("signal needs \"pid\": a positive whole number"))
            }
            let signal: Signal?
            if let name = json["signal"]?.string {
                signal = Signal(name: name)
            } else if let number = json["signal"]?.int32, number > 0, number < 65 {
                signal = Signal(rawValue: number)
            } else {
                signal = nil
            }
            guard let signal else {
                return .failure(ControlError("no such signal: \(json["signal"].map(describe) ?? "missing \"signal\"")"))
            }
            return .success(.signal(pid: pid, signal: signal))
        case "scale":
            guard let service = json["service"]?.string else {
                return .failure(ControlError("scale needs \"service\""))
            }
            guard let workers = json["workers"]?.int else {
                return .failure(ControlError("scale needs \"workers\": a whole number \(Settings.workers.range.text)"))
            }
            if let problem = Settings.workers.check(workers) { return .failure(ControlError("scale: \(problem)")) }
            return .success(.scale(service: service, workers: workers))
        case "stop":
            let name = json["mode"]?.string ?? "graceful"
            guard let mode = StopMode(rawValue: name) else {
                return .failure(ControlError("stop mode must be graceful, fast or immediate; got '\(name)'"))
            }
            return .success(.stop(mode: mode))
        default:
            return .failure(ControlError("unknown op '\(op)' (one of \(ops))"))
        }
    }

    private static let ops = "subscribe, status, signal, scale, reload, stop"

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return "'\(s)'"
        case .number(let n): return JSONObject.number(n, decimals: 0)
        default: return "a non-signal value"
        }
    }

    /// The request as a line (the CLI and the dashboard send these).
    public var line: String {
        var json = JSONObject()
        json.add("op", op)
        switch self {
        case .signal(let pid, let signal):
            json.add("pid", Int(pid))
            json.add("signal", signal.name)
        case .scale(let service, let workers):
            json.add("service", service)
            json.add("workers", workers)
        case .stop(let mode): json.add("mode", mode.rawValue)
        default: break
        }
        return json.string + "\n"
    }
}

public struct ControlError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    /// The master closes the connection after this line (the client was dropped or refused).
    public let closing: Bool
    public init(_ message: String, closing: Bool = false) {
        self.message = message
        self.closing = closing
    }
    public var description: String { message }

    /// `{"ok":false,"error":"…"}`, with `"closing":true` when the master hangs up after it.
    public var line: String {
        var json = JSONObject()
        json.add("ok", false)
        json.add("error", message)
        if closing { json.add("closing", true) }
        return json.string + "\n"
    }
}
