import Foundation
import Glibc

/// A raw HTTP/1.1 client for the tests: exact bytes out, the response parsed by hand, every read
/// bounded by a timeout. Nothing between the test and the server's socket.
final class HTTPConnection {
    let fd: Int32
    private var buffered: [UInt8] = []

    struct Response {
        let status: Int
        let headers: [String: String]  // lower-cased names
        let body: String
        var workerPid: Int32? { headers["x-worker-pid"].flatMap { Int32($0) } }
    }

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw TestFailure("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// More bytes, or nil at EOF / reset. Throws when nothing came within `timeout`.
    private func fill(timeout: Double) throws -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) > 0 else { throw TestFailure("no reply within \(timeout) s") }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { return false }
        buffered += chunk[0..<n]
        return true
    }

    /// True when the server closed the connection (EOF or reset) within `timeout`.
    func closedByServer(within timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            do { if !(try fill(timeout: max(0.01, deadline.timeIntervalSinceNow))) { return true } } catch {
                return false
            }
        }
        return false
    }

    /// Reads one response (Content-Length bodies, or to EOF without one).
    func readResponse(timeout: Double = 10) throws -> Response {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var end: Int?
        while end == nil {
            if let found = find(separator) {
                end = found
                break
            }
            guard try fill(timeout: timeout) else {
                throw TestFailure(
                    "connection closed before a response head: \(String(decoding: buffered, as: UTF8.self))")
            }
        }
        let head = String(decoding: buffered[0..<end!], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw TestFailure("bad status line: \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        buffered.removeFirst(end! + 4)
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            while buffered.count < length {
                guard try fill(timeout: timeout) else { throw TestFailure("connection closed inside a body") }
            }
            let body = String(decoding: buffered[0..<length], as: UTF8.self)
            buffered.removeFirst(length)
            return Response(status: status, headers: headers, body: body)
        }
        while (try? fill(timeout: timeout)) == true {}
        defer { buffered.removeAll() }
        return Response(status: status, headers: headers, body: String(decoding: buffered, as: UTF8.self))
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffered.count >= needle.count else { return nil }
        for start in 0...(buffered.count - needle.count) where buffered[start] == needle[0] {
            if Array(buffered[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }

    /// One request on a new connection.
    static func get(_ port: UInt16, _ path: String, close: Bool = true) throws -> Response {
        let connection = try HTTPConnection(port: port)
        try connection.send(
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(close ? "Connection: close\r\n" : "")\r\n")
        return try connection.readResponse()
    }
}
