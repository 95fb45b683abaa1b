/// oslo.messaging's RPC messages, as its rabbit driver puts them on the wire (and as the embedded
/// transport stores them): a JSON envelope `{"oslo.version": "2.0", "oslo.message": "<payload as a
/// JSON string>"}`, the payload holding method, args, optional namespace and version, the call's
/// `_msg_id` / `_reply_q` / `_timeout`, `_unique_id`, and the request context flattened into
/// `_context_<key>` fields. Reference: shared/reference/oslo-messaging-rabbit.md §2.

/// Why a body could not be read as an RPC message.
public struct RPCDecodeError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct RPCRequest: Equatable, Sendable {
    public var method: String
    public var args: [String: JSONValue]
    public var namespace: String?
    public var version: String?
    /// Calls only: the id the reply carries, and the queue it goes to.
    public var msgId: String?
    public var replyQueue: String?
    /// `call_monitor_timeout` (seconds), not the call's timeout; nil for none.
    public var callMonitorTimeout: Double?
    public var uniqueId: String
    public var context: [String: JSONValue]
    /// A field oslo's dispatcher trips over, found by `decode`: the call still gets its failure.
    public var malformation: RPCMalformation?

    public init(
        method: String, args: [String: JSONValue] = [:], namespace: String? = nil, version: String? = nil,
        msgId: String? = nil, replyQueue: String? = nil, callMonitorTimeout: Double? = nil,
        uniqueId: String, context: [String: JSONValue] = [:]
    ) {
        self.method = method
        self.args = args
        self.namespace = namespace
        self.version = version
        self.msgId = msgId
        self.replyQueue = replyQueue
        self.callMonitorTimeout = callMonitorTimeout
        self.uniqueId = uniqueId
        self.context = context
    }

    public var isCall: Bool { msgId != nil }

    /// The payload's fields, in the order oslo's client writes them.
    public var payload: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("method", .string(method)), ("args", .object(args))]
        if let namespace { fields.append(("namespace", .string(namespace))) }
        if let version { fields.append(("version", .string(version))) }
        if let msgId {
            fields.append(("_msg_id", .string(msgId)))
            fields.append(("_reply_q", replyQueue.map(JSONValue.string) ?? .null))
            fields.append(("_timeout", callMonitorTimeout.map(JSONValue.number) ?? .null))
        }
        fields.append(("_unique_id", .string(uniqueId)))
        for key in context.keys.sorted() { fields.append(("_context_" + key, context[key]!)) }
        return fields
    }

    /// The message body: oslo's 2.0 envelope around the payload.
    public var body: String { RPCEnvelope.wrap(JSONValue.serialize(fields: payload)) }

    /// The request in a body. A body oslo could not read at all (not `application/json`, not
    /// JSON, an envelope of another version) throws: it is rejected, and a call gets no reply.
    /// A readable one whose `method` is missing or not a string, or whose `args` is not an
    /// object, decodes with its `malformation`: the dispatcher answers it with oslo's failure.
    public static func decode(
        _ body: String, contentType: String = RPCEnvelope.contentType
    ) throws(RPCDecodeError) -> RPCRequest {
        try RPCEnvelope.checkContentType(contentType)
        let payload = try RPCEnvelope.unwrap(body)
        guard case .object = payload else { throw RPCDecodeError("the payload is not a JSON object") }
        var request = RPCRequest(method: "", uniqueId: payload["_unique_id"]?.string ?? "")
        switch payload["method"] {
        case .string(let method)?: request.method = method
        case let other:
            request.method = other?.pythonText ?? "None"
            request.malformation = .method(other ?? .null)
        }
        switch payload["args"] {
        case .object(let args)?: request.args = args
        case nil: break
        case let other?: if request.malformation == nil { request.malformation = .args(other) }
        }
        request.namespace = payload["namespace"]?.string
        request.version = payload["version"]?.string
        request.msgId = payload["_msg_id"]?.string
        request.replyQueue = payload["_reply_q"]?.string
        request.callMonitorTimeout = payload["_timeout"]?.double
        if case .object(let fields) = payload {
            for (key, value) in fields where key.hasPrefix("_context_") {
                request.context[String(key.dropFirst(9))] = value
            }
        }
        return request
    }
}

/// A request field oslo's `RPCDispatcher.dispatch` cannot use; it fails the way Python does.
public enum RPCMalformation: Equatable, Sendable {
    /// `method` missing (null) or not a string: `hasattr(endpoint, method)` raises TypeError.
    case method(JSONValue)
    /// `args` not an object (null included): `args.items()` raises AttributeError.
    case args(JSONValue)
}

/// A reply to a call: one message with `ending: true` (oslo.messaging ≥ 4.0).
public struct RPCReply: Equatable, Sendable {
    public var result: JSONValue
    public var failure: RPCFailure?
    public var ending: Bool
    public var msgId: String
    public var uniqueId: String

    public init(
        result: JSONValue = .null, failure: RPCFailure? = nil, ending: Bool = true, msgId: String, uniqueId: String
    ) {
        self.result = result
        self.failure = failure
        self.ending = ending
        self.msgId = msgId
        self.uniqueId = uniqueId
    }

    public var body: String {
        RPCEnvelope.wrap(
            JSONValue.serialize(fields: [
                ("result", result), ("failure", failure.map { .string($0.json) } ?? .null), ("ending", .bool(ending)),
                ("_msg_id", .string(msgId)), ("_unique_id", .string(uniqueId)),
            ]))
    }

    public static func decode(_ body: String) throws(RPCDecodeError) -> RPCReply {
        let payload = try RPCEnvelope.unwrap(body)
        guard let msgId = payload["_msg_id"]?.string else { throw RPCDecodeError("a reply without _msg_id") }
        var failure: RPCFailure?
        if case .string(let text)? = payload["failure"] { failure = try RPCFailure.decode(text) }
        return RPCReply(
            result: payload["result"] ?? .null, failure: failure, ending: payload["ending"]?.bool ?? false,
            msgId: msgId, uniqueId: payload["_unique_id"]?.string ?? "")
    }
}

/// A remote exception in oslo's format (`serialize_remote_exception`): class, module, message,
/// traceback lines, args, kwargs. Carried in a reply's `failure` as a JSON string.
public struct RPCFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var className: String
    public var module: String
    public var message: String
    public var traceback: [String]
    public var args: [JSONValue]
    public var kwargs: [String: JSONValue]

    public init(
        className: String, module: String, message: String, traceback: [String] = [],
        args: [JSONValue]? = nil, kwargs: [String: JSONValue] = [:]
    ) {
        self.className = className
        self.module = module
        self.message = message
        self.traceback = traceback
        self.args = args ?? [.string(message)]
        self.kwargs = kwargs
    }

    public var description: String { "\(module).\(className): \(message)" }

    public var json: String {
        JSONValue.serialize(fields: [
            ("class", .string(className)), ("module", .string(module)), ("message", .string(message)),
            ("tb", .array(traceback.map(JSONValue.string))), ("args", .array(args)), ("kwargs", .object(kwargs)),
        ])
    }

    public static func decode(_ text: String) throws(RPCDecodeError) -> RPCFailure {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw RPCDecodeError("failure is not JSON: \(error)") }
        return RPCFailure(
            className: value["class"]?.string ?? "Exception", module: value["module"]?.string ?? "builtins",
            message: value["message"]?.string ?? "", traceback: value["tb"]?.array?.compactMap(\.string) ?? [],
            args: value["args"]?.array ?? [],
            kwargs: {
                if case .object(let o)? = value["kwargs"] { return o }
                return [:]
            }())
    }

    // The dispatcher's own errors, with oslo's names.
    public static func noSuchMethod(_ method: String) -> RPCFailure {
        RPCFailure(
            className: "NoSuchMethod", module: "oslo_messaging.rpc.dispatcher",
            message: "Endpoint does not support RPC method \(method)")
    }

    public static func unsupportedVersion(_ version: String, method: String) -> RPCFailure {
        RPCFailure(
            className: "UnsupportedVersion", module: "oslo_messaging.rpc.dispatcher",
            message: "Endpoint does not support RPC version \(version). Attempted method: \(method)")
    }

    /// What Python 3.11 raises on a malformed request, word for word.
    public static func malformed(_ malformation: RPCMalformation) -> RPCFailure {
        switch malformation {
        case .method(let value):
            return RPCFailure(
                className: "TypeError", module: "builtins",
                message: "attribute name must be string, not '\(value.pythonTypeName)'")
        case .args(let value):
            return RPCFailure(
                className: "AttributeError", module: "builtins",
                message: "'\(value.pythonTypeName)' object has no attribute 'items'")
        }
    }
}

public enum RPCEnvelope {
    static let version = "2.0"
    /// The only content type oslo's consumers decode (kombu's json); any other is rejected.
    public static let contentType = "application/json"

    /// kombu decodes a body by its AMQP content type: with another one (or none) the payload is
    /// not a dict, `RabbitMessage` fails, and the message is rejected without a reply.
    static func checkContentType(_ contentType: String) throws(RPCDecodeError) {
        guard contentType == Self.contentType else {
            throw RPCDecodeError(
                "content type \(contentType.isEmpty ? "(none)" : "'\(contentType)'") is not \(Self.contentType)")
        }
    }

    static func wrap(_ payload: String) -> String {
        JSONValue.serialize(fields: [("oslo.version", .string(version)), ("oslo.message", .string(payload))])
    }

    /// The payload of a body: an enveloped one (its version compatible with 2.0), or a bare
    /// object (oslo's legacy 1.0 format, accepted as is).
    static func unwrap(_ body: String) throws(RPCDecodeError) -> JSONValue {
        let outer: JSONValue
        do { outer = try JSONValue.parse(body) } catch { throw RPCDecodeError("not JSON: \(error)") }
        guard case .object(let fields) = outer else { throw RPCDecodeError("not a JSON object") }
        guard let versionValue = fields["oslo.version"], let message = fields["oslo.message"] else { return outer }
        guard let version = versionValue.string, RPCVersion.isCompatible(current: version, requested: version),
            RPCVersion.isCompatible(current: Self.version, requested: version)
        else {
            throw RPCDecodeError("unsupported envelope version \(versionValue)")
        }
        guard case .string(let inner) = message else { throw RPCDecodeError("oslo.message is not a string") }
        do { return try JSONValue.parse(inner) } catch { throw RPCDecodeError("oslo.message is not JSON: \(error)") }
    }
}

/// oslo's `version_is_compatible`: same major, requested minor ≤ current minor.
public enum RPCVersion {
    public static func isCompatible(current: String, requested: String) -> Bool {
        func parts(_ version: String) -> (Int, Int, Int)? {
            let numbers = version.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
            guard !numbers.isEmpty, numbers.count <= 3, numbers.allSatisfy({ $0 != nil }) else { return nil }
            return (numbers[0]!, numbers.count > 1 ? numbers[1]! : 0, numbers.count > 2 ? numbers[2]! : 0)
        }
        guard let have = parts(current), let want = parts(requested) else { return false }
        if have.0 != want.0 { return false }
        if want.1 > have.1 { return false }
        if want.1 == have.1 && want.2 > have.2 { return false }
        return true
    }
}

extension JSONValue {
    /// The Python type `json.loads` gives this value (for Python's own error messages).
    var pythonTypeName: String {
        switch self {
        case .null: return "NoneType"
        case .bool: return "bool"
        case .number(let number): return number == number.rounded() && abs(number) < 9.0e15 ? "int" : "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        }
    }

    /// Python's `str()` of this value, for scalars (oslo formats a bad method name with `%s`).
    var pythonText: String {
        switch self {
        case .null: return "None"
        case .bool(let flag): return flag ? "True" : "False"
        case .string(let text): return text
        default: return serialized
        }
    }

    /// Compact JSON text. Object keys are written in sorted order (stable output).
    public var serialized: String {
        var out = ""
        Self.write(self, into: &out)
        return out
    }

    /// An object with its fields in the given order.
    public static func serialize(fields: [(String, JSONValue)]) -> String {
        var out = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { out += ", " }
            out += JSONObject.quote(key) + ": "
            write(value, into: &out)
        }
        return out + "}"
    }

    private static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .number(let number):
            if number.isFinite, number == number.rounded(), abs(number) < 9.0e15 {
                out += String(Int64(number))
            } else if number.isFinite {
                out += "\(number)"
            } else {
                out += "null"
            }
        case .string(let text): out += JSONObject.quote(text)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += ", " }
                write(item, into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out += ", " }
                out += JSONObject.quote(key) + ": "
                write(fields[key]!, into: &out)
            }
            out += "}"
        }
    }
}
