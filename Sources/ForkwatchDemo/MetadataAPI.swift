import ForkwatchHTTP
import Foundation

/// A metadata-style API at `/openstack`, shaped like nova's metadata service: the version list,
/// then per version `meta_data.json`, `network_data.json` and `vendor_data.json`. It describes
/// the host serving it (there is no instance behind a forkwatch demo).
struct MetadataAPI: APIApp {
    let name = "metadata"
    let mountPoints = ["/openstack"]
    let host: String

    static let versions = [
        "2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2018-08-27", "2020-10-14", "latest",
    ]
    static let files = ["meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json"]

    func handle(_ request: APIRequest) -> APIResult {
        guard request.method == "GET" || request.method == "HEAD" else {
            return .now(.methodNotAllowed(["GET", "HEAD"]))
        }
        let parts = request.path.split(separator: "/").map(String.init)
        switch parts.count {
        case 0:
            return .now(.text(200, Self.versions.joined(separator: "\n")))
        case 1 where Self.versions.contains(parts[0]):
            return .now(.text(200, Self.files.joined(separator: "\n")))
        case 2 where Self.versions.contains(parts[0]):
            switch parts[1] {
            case "meta_data.json":
                struct MetaData: Encodable {
                    let uuid: String, name: String, hostname: String, availability_zone: String, launch_index: Int
                    let project_id: String, meta: [String: String], public_keys: [String: String]
                }
                return .now(
                    .json(
                        200,
                        MetaData(
                            uuid: Self.uuid(for: host), name: host, hostname: host, availability_zone: "nova",
                            launch_index: 0, project_id: "demo", meta: ["served_by": "forkwatch"],
                            public_keys: [:])))
            case "network_data.json":
                return .now(.json(200, ["links": [String](), "networks": [], "services": []]))
            case "vendor_data.json", "vendor_data2.json":
                return .now(.json(200, [String: String]()))
            default:
                return .now(.text(404, "Not Found"))
            }
        default:
            return .now(.text(404, "Not Found"))
        }
    }

    /// A stable UUID-shaped id for a name (FNV-1a), so every worker answers the same one.
    static func uuid(for name: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in name.utf8 {
            a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 7
        }
        let hex = String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
        let c = Array(hex)
        return
            "\(String(c[0..<8]))-\(String(c[8..<12]))-4\(String(c[13..<16]))-a\(String(c[17..<20]))-\(String(c[20..<32]))"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
