import Foundation
import NIOHTTP1

/// A request as an app sees it: paste's environ, reduced. `scriptName` is where the app is
/// mounted (SCRIPT_NAME), `path` what is left below it (PATH_INFO).
public struct APIRequest: Sendable {
    public var method: String
    public var scriptName: String
    public var path: String
    public var query: String
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(
        method: String, scriptName: String = "", path: String, query: String = "",
        headers: HTTPHeaders = [:], body: [UInt8] = []
    ) {
        self.method = method
        self.scriptName = scriptName
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first(name: name)
    }

    /// `scheme://host` as the client addressed us, for the links nova puts in its bodies.
    public var origin: String { "http://\(header("Host") ?? "localhost")" }
}

/// What an app answers. The server adds Content-Length, Connection and X-Worker-Pid.
public struct APIResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        status: Int, contentType: String = "text/plain; charset=UTF-8", headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// The healthcheck's answer, built once: the benchmarks' hot path.
    static let ok = APIResponse.text(200, "OK")

    public static func text(_ status: Int, _ text: String) -> APIResponse {
        APIResponse(status: status, body: Array(text.utf8))
    }

    public static func json<T: Encodable>(
        _ status: Int, _ value: T, headers: [(name: String, value: String)] = []
    ) -> APIResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = (try? encoder.encode(value)).map { Array($0) } ?? Array("{}".utf8)
        return APIResponse(status: status, contentType: "application/json", headers: headers, body: body)
    }

    /// nova's fault body: `{"itemNotFound": {"code": 404, "message": "…"}}`.
    public static func fault(_ status: Int, _ kind: String, _ message: String) -> APIResponse {
        struct Fault: Encodable {
            let code: Int
            let message: String
        }
        return json(status, [kind: Fault(code: status, message: message)])
    }

    public static func notFound(_ message: String = "The resource could not be found.") -> APIResponse {
        fault(404, "itemNotFound", message)
    }

    public static func methodNotAllowed(_ allowed: [String]) -> APIResponse {
        var response = fault(
            405, "methodNotAllowed",
            "The method is not allowed for this resource (allowed: \(allowed.joined(separator: ", "))).")
        response.headers.append(("Allow", allowed.joined(separator: ", ")))
        return response
    }
}

/// How an app answers: at once (on the event loop: no blocking), or by work that may block
/// (the database), which the server runs on its thread pool.
public enum APIResult: Sendable {
    case now(APIResponse)
    case blocking(@Sendable () -> APIResponse)
}

/// One of `enabled_apis`: paste's app, mounted at one or more path prefixes.
public protocol APIApp: Sendable {
    /// The name in `enabled_apis` (`osapi_compute`, `metadata`).
    var name: String { get }
    var mountPoints: [String] { get }
    func handle(_ request: APIRequest) -> APIResult
}

/// paste's `URLMap`: the longest mount point that is the path or a parent of it wins; the app
/// sees the rest of the path.
public struct URLMap: Sendable {
    public private(set) var entries: [(prefix: String, app: any APIApp)] = []

    public init(_ apps: [any APIApp]) {
        for app in apps {
            for prefix in app.mountPoints { entries.append((Self.normalized(prefix), app)) }
        }
        entries.sort { $0.prefix.count > $1.prefix.count }
    }

    static func normalized(_ prefix: String) -> String {
        var prefix = prefix.hasPrefix("/") ? prefix : "/" + prefix
        while prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }
        return prefix
    }

    /// The app for `path`, with SCRIPT_NAME and PATH_INFO. Compared as UTF-8 bytes: this runs for
    /// every request.
    public func route(_ path: String) -> (app: any APIApp, scriptName: String, pathInfo: String)? {
        let bytes = path.utf8
        for (prefix, app) in entries {
            if prefix == "/" { return (app, "", path) }
            let prefixBytes = prefix.utf8
            guard bytes.count >= prefixBytes.count, bytes.starts(with: prefixBytes) else { continue }
            if bytes.count == prefixBytes.count { return (app, prefix, "") }
            let rest = bytes.dropFirst(prefixBytes.count)
            if rest.first == UInt8(ascii: "/") { return (app, prefix, String(Substring(rest))) }
        }
        return nil
    }

    public func respond(to method: String, uri: String, headers: HTTPHeaders, body: [UInt8]) -> APIResult {
        let (path, query) = Self.split(uri)
        guard let (app, scriptName, pathInfo) = route(path) else { return .now(.notFound()) }
        return app.handle(
            APIRequest(
                method: method, scriptName: scriptName, path: pathInfo, query: query, headers: headers, body: body))
    }

    /// Path and query of a request target; an absolute-form target (`http://h/p`) keeps its path.
    static func split(_ uri: String) -> (path: String, query: String) {
        // The common case, an origin-form target without a query, costs no copy.
        if uri.utf8.first == UInt8(ascii: "/") && !uri.utf8.contains(UInt8(ascii: "?")) { return (uri, "") }
        var target = Substring(uri)
        if !target.hasPrefix("/"), let scheme = target.range(of: "://") {
            target = target[scheme.upperBound...]
            target = target.firstIndex(of: "/").map { target[$0...] } ?? "/"
        }
        if let mark = target.firstIndex(of: "?") {
            return (String(target[..<mark]), String(target[target.index(after: mark)...]))
        }
        return (String(target), "")
    }
}
