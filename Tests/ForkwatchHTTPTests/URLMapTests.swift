import Forkwatch
import ForkwatchCore
import ForkwatchServices
import Foundation
import NIOHTTP1
import Testing

@testable import ForkwatchDemo
@testable import ForkwatchHTTP

/// paste's URLMap and the apps behind it, without a socket.
@Suite struct URLMapTests {
    let database: SharedDatabase
    let map: URLMap

    init() throws {
        let path = NSTemporaryDirectory() + "forkwatch-http-\(UUID().uuidString.prefix(8))/db.sqlite"
        try ServicesStore(path: path).migrate()
        // No scheduler runs here: a POST's select_destinations call times out quickly.
        database = SharedDatabase(path: path, schedulingTimeout: 0.3)
        map = APICatalogue.urlMap(enabled: ["osapi_compute", "metadata"], database: database, host: "node1")
    }

    private func call(_ method: String, _ uri: String, body: String = "") -> APIResponse {
        switch map.respond(to: method, uri: uri, headers: ["Host": "h:1"], body: Array(body.utf8)) {
        case .now(let response): return response
        case .blocking(let work): return work()
        }
    }

    private func json(_ response: APIResponse) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func theLongestMountPointWinsAndTheAppSeesTheRest() throws {
        let routed = try #require(map.route("/v2.1/servers/detail"))
        #expect(routed.app.name == "osapi_compute")
        #expect(routed.scriptName == "/v2.1" && routed.pathInfo == "/servers/detail")
        #expect(map.route("/v2.1")?.pathInfo == "")
        // A prefix matches whole segments only: /v2.10 is not under /v2.1.
        #expect(map.route("/v2.10")?.app.name == "root")
        #expect(map.route("/openstack/latest")?.app.name == "metadata")
        #expect(map.route("/healthcheck")?.app.name == "healthcheck")
        #expect(URLMap.split("/a/b?x=1&y") == ("/a/b", "x=1&y"))
        #expect(URLMap.split("http://host:8/v2.1?q").path == "/v2.1")
    }

    @Test func healthcheckAnswersOK() {
        #expect(call("GET", "/healthcheck").status == 200)
        #expect(call("GET", "/healthcheck").body == Array("OK".utf8))
        #expect(call("HEAD", "/healthcheck").status == 204)
        #expect(call("POST", "/healthcheck").status == 405)
        #expect(call("GET", "/healthcheck/deeper").status == 404)
    }

    @Test func serversAreCreatedListedShownAndDeleted() throws {
        let created = call("POST", "/v2.1/servers", body: #"{"server": {"name": "web-1", "flavorRef": "m1.small"}}"#)
        #expect(created.status == 202)
        let server = try #require(try json(created)["server"] as? [String: Any])
        let id = try #require(server["id"] as? String)
        // No scheduler answered: nova's NoValidHost, the instance in ERROR with its fault.
        #expect(server["status"] as? String == "ERROR")
        #expect(server["OS-EXT-SRV-ATTR:host"] == nil)
        #expect(((server["fault"] as? [String: Any])?["message"] as? String)?.contains("No valid host") == true)
        #expect(created.headers.contains { $0.name == "Location" && $0.value == "http://h:1/v2.1/servers/\(id)" })

        let list = try #require(try json(call("GET", "/v2.1/servers"))["servers"] as? [[String: Any]])
        #expect(list.map { $0["id"] as? String } == [id])
        #expect(call("GET", "/v2.1/servers/\(id)").status == 200)
        #expect(call("DELETE", "/v2.1/servers/\(id)").status == 204)
        #expect(call("GET", "/v2.1/servers/\(id)").status == 404)
        #expect(call("DELETE", "/v2.1/servers/\(id)").status == 404)
        #expect((try json(call("GET", "/v2.1/servers/detail"))["servers"] as? [Any])?.isEmpty == true)
    }

    @Test func badBodiesAndUnknownPathsGetNovaFaults() throws {
        let notJSON = call("POST", "/v2.1/servers", body: "{not json")
        #expect(notJSON.status == 400)
        #expect(try json(notJSON)["badRequest"] != nil)
        #expect(call("POST", "/v2.1/servers", body: #"{"server": {"name": ""}}"#).status == 400)
        #expect(call("POST", "/v2.1/servers", body: #"{"server": {"name": "x", "flavorRef": "99"}}"#).status == 400)
        let missing = call("GET", "/v2.1/nothing")
        #expect(missing.status == 404)
        #expect(try json(missing)["itemNotFound"] != nil)
        let wrongMethod = call("PUT", "/v2.1/servers")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers.contains { $0.name == "Allow" })
        #expect(call("GET", "/v2.1/").status == 200)
        #expect(try json(call("GET", "/v2.1"))["version"] != nil)
    }

    @Test func metadataListsVersionsAndDescribesTheHost() throws {
        #expect(String(decoding: call("GET", "/openstack").body, as: UTF8.self).hasSuffix("latest"))
        #expect(String(decoding: call("GET", "/openstack/latest").body, as: UTF8.self).contains("meta_data.json"))
        let meta = try json(call("GET", "/openstack/latest/meta_data.json"))
        #expect(meta["hostname"] as? String == "node1")
        #expect((meta["uuid"] as? String)?.count == 36)
        #expect(meta["uuid"] as? String == MetadataAPI.uuid(for: "node1"))
        #expect(call("GET", "/openstack/1999-01-01/meta_data.json").status == 404)
        #expect(call("POST", "/openstack/latest").status == 405)
    }

    @Test func theRootListsWhatIsMounted() throws {
        let apis = try #require(try json(call("GET", "/"))["apis"] as? [[String: Any]])
        #expect(apis.compactMap { $0["id"] as? String } == ["osapi_compute", "metadata", "healthcheck"])
        #expect(APICatalogue.unknown(in: ["osapi_compute", "ec2"]) == "ec2")
        #expect(APICatalogue.unknown(in: ["metadata"]) == nil)
    }
}
