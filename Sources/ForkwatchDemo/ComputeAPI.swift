import Forkwatch
import ForkwatchHTTP
import ForkwatchRPC
import ForkwatchServices
import Foundation

/// A small compute-style API at `/v2.1`, shaped like nova's: the version document, servers
/// (list, detail, show, create, delete) kept in the `instances` table of the services database,
/// and a fixed list of flavors. Database work runs on the server's thread pool.
struct ComputeAPI: APIApp {
    let name = "osapi_compute"
    let mountPoints = ["/v2.1"]
    let database: SharedDatabase
    let host: String

    static let flavors: [(id: String, name: String, ram: Int, vcpus: Int, disk: Int)] = [
        ("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20), ("3", "m1.medium", 4096, 2, 40),
        ("4", "m1.large", 8192, 4, 80),
    ]

    struct Link: Encodable {
        let rel: String
        let href: String
    }

    func handle(_ request: APIRequest) -> APIResult {
        let parts = request.path.split(separator: "/").map(String.init)
        let base = request.origin + request.scriptName
        switch (request.method, parts.count, parts.first) {
        case ("GET", 0, _), ("HEAD", 0, _):
            return .now(versionDocument(base))
        case (_, 0, _):
            return .now(.methodNotAllowed(["GET", "HEAD"]))
        case ("GET", 1, "flavors"):
            struct Flavor: Encodable {
                let id: String
                let name: String
                let ram: Int
                let vcpus: Int
                let disk: Int
                let links: [Link]
            }
            return .now(
                .json(
                    200,
                    [
                        "flavors": Self.flavors.map {
                            Flavor(
                                id: $0.id, name: $0.name, ram: $0.ram, vcpus: $0.vcpus, disk: $0.disk,
                                links: [Link(rel: "self", href: "\(base)/flavors/\($0.id)")])
                        }
                    ]))
        case (_, 1, "flavors"):
            return .now(.methodNotAllowed(["GET"]))
        case ("GET", _, "servers") where parts.count == 1 || (parts.count == 2 && parts[1] == "detail"):
            let detail = parts.count == 2
            return .blocking { [database] in
                database.use { store in
                    let rows = try store.instances()
                    if detail { return .json(200, ["servers": rows.map { Self.server($0, base: base) }]) }
                    struct Brief: Encodable {
                        let id: String
                        let name: String
                        let links: [Link]
                    }
                    return .json(
                        200,
                        [
                            "servers": rows.map {
                                Brief(
                                    id: $0.uuid, name: $0.display_name,
                                    links: [Link(rel: "self", href: "\(base)/servers/\($0.uuid)")])
                            }
                        ])
                }
            }
        case ("POST", 1, "servers"):
            return create(request, base: base)
        case (_, 1, "servers"):
            return .now(.methodNotAllowed(["GET", "POST"]))
        case ("GET", 2, "servers"):
            let id = parts[1]
            return .blocking { [database] in
                database.use { store in
                    guard let row = try store.instance(uuid: id) else {
                        return .notFound("Instance \(id) could not be found.")
                    }
                    return .json(200, ["server": Self.server(row, base: base)])
                }
            }
        case ("DELETE", 2, "servers"):
            let id = parts[1]
            return .blocking { [database] in
                database.use { store in
                    try store.deleteInstance(uuid: id)
                        ? APIResponse(status: 204) : .notFound("Instance \(id) could not be found.")
                }
            }
        case (_, 2, "servers"):
            return .now(.methodNotAllowed(["GET", "DELETE"]))
        default:
            return .now(.notFound())
        }
    }

    private func versionDocument(_ base: String) -> APIResponse {
        struct Version: Encodable {
            let id = "v2.1", status = "CURRENT", version = "2.96", min_version = "2.1", updated = "2013-07-23T11:33:21Z"
            let links: [Link]
        }
        return .json(200, ["version": Version(links: [Link(rel: "self", href: base + "/")])])
    }

    /// `POST /servers {"server": {"name": …, "flavorRef": …}}`: 400 for a body nova would refuse.
    private func create(_ request: APIRequest, base: String) -> APIResult {
        struct Body: Decodable {
            struct Server: Decodable {
                let name: String
                let flavorRef: String?
            }
            let server: Server
        }
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: Data(request.body))
        } catch {
            return .now(
                .fault(
                    400, "badRequest",
                    "Invalid request body: expected {\"server\": {\"name\": ..., \"flavorRef\": ...}}"))
        }
        let name = body.server.name
        guard !name.isEmpty, name.count <= 255 else {
            return .now(.fault(400, "badRequest", "Invalid input for field/attribute name: must be 1-255 characters."))
        }
        let flavorRef = body.server.flavorRef ?? "1"
        guard let flavor = Self.flavors.first(where: { $0.id == flavorRef || $0.name == flavorRef }) else {
            return .now(.fault(400, "badRequest", "Flavor \(flavorRef) could not be found."))
        }
        let requestId = "req-" + RPCIds.hex()
        return .blocking { [database] in
            database.use { store in
                // nova: the instance is recorded as building, the scheduler picks a host
                // (conductor → scheduler `select_destinations`, a call), then it is active there,
                // or in error when no scheduler answered.
                var row = try store.createInstance(name: name, flavor: flavor.name, host: nil)
                var schedulerPid: Int?
                var fault: String?
                do {
                    let result = try database.scheduler().call(
                        "select_destinations", context: ["request_id": .string(requestId)],
                        args: ["instance_name": .string(name), "flavor": .string(flavor.name)])
                    let chosen = result.array?.first
                    schedulerPid = chosen?["scheduler_pid"]?.int
                    row =
                        try store.setInstanceState(uuid: row.uuid, vmState: "active", host: chosen?["host"]?.string)
                        ?? row
                } catch {
                    fault = "No valid host was found: \(error)"
                    row = try store.setInstanceState(uuid: row.uuid, vmState: "error", host: nil) ?? row
                }
                return .json(
                    202, ["server": Self.server(row, base: base, schedulerPid: schedulerPid, fault: fault)],
                    headers: [("Location", "\(base)/servers/\(row.uuid)"), ("X-Openstack-Request-Id", requestId)])
            }
        }
    }

    struct Server: Encodable {
        let id: String
        let name: String
        let status: String
        let flavor: [String: String]
        let created: String
        let links: [Link]
        let host: String?
        let schedulerPid: Int?
        let fault: [String: String]?

        enum CodingKeys: String, CodingKey {
            case id, name, status, flavor, created, links, fault
            case host = "OS-EXT-SRV-ATTR:host"
            case schedulerPid = "forkwatch:scheduler_pid"
        }
    }

    static func server(
        _ row: ServicesStore.Instance, base: String, schedulerPid: Int? = nil, fault: String? = nil
    ) -> Server {
        Server(
            id: row.uuid, name: row.display_name, status: row.vm_state.uppercased(),
            flavor: ["original_name": row.flavor], created: ISO8601DateFormatter().string(from: row.created_at),
            links: [Link(rel: "self", href: "\(base)/servers/\(row.uuid)")], host: row.host, schedulerPid: schedulerPid,
            fault: fault.map { ["message": $0, "code": "500"] })
    }
}
