/// oslo.middleware's healthcheck at `/healthcheck`: `200 OK`, HEAD 204 as oslo's does. A
/// draining worker still answers 200 (with `Connection: close`, from the server): a 503 there
/// would count as a failed request for a client in the middle of a rolling restart, and the
/// next connection reaches a worker that is not draining anyway.
struct HealthcheckApp: APIApp {
    let name = "healthcheck"
    let mountPoints = ["/healthcheck"]

    func handle(_ request: APIRequest) -> APIResult {
        guard request.path.isEmpty || request.path == "/" else { return .now(.text(404, "Not Found")) }
        switch request.method {
        case "GET":
            return .now(.ok)
        case "HEAD":
            return .now(APIResponse(status: 204))
        default:
            return .now(.methodNotAllowed(["GET", "HEAD"]))
        }
    }
}

/// `/`: what is mounted here (nova's root answers its versions; this one lists every app).
struct RootApp: APIApp {
    let name = "root"
    let mountPoints = ["/"]
    let mounted: [(name: String, prefix: String)]

    func handle(_ request: APIRequest) -> APIResult {
        guard request.path.isEmpty || request.path == "/" else { return .now(.notFound()) }
        guard request.method == "GET" || request.method == "HEAD" else {
            return .now(.methodNotAllowed(["GET", "HEAD"]))
        }
        struct Link: Encodable {
            let rel: String
            let href: String
        }
        struct Mounted: Encodable {
            let id: String
            let links: [Link]
        }
        let apps = mounted.map {
            Mounted(id: $0.name, links: [Link(rel: "self", href: request.origin + $0.prefix + "/")])
        }
        return .now(.json(200, ["apis": apps]))
    }
}

extension URLMap {
    /// `apps` at their mount points, with `/healthcheck` and `/` listing them: what an HTTP
    /// service serves.
    public static func serving(_ apps: [any APIApp]) -> URLMap {
        let mounted = apps.flatMap { app in app.mountPoints.map { (app.name, $0) } }
        return URLMap(apps + [HealthcheckApp(), RootApp(mounted: mounted + [("healthcheck", "/healthcheck")])])
    }
}
