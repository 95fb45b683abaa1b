import Forkwatch
import ForkwatchCore
import ForkwatchHTTP
import Testing

@testable import ForkwatchCLI

/// The HTTP options in a config file: nova's names and defaults, and errors with their line.
@Suite struct HTTPOptionsTests {

    @Test func defaultsAreNovas() {
        let options = HTTPOptions()
        #expect(options.enabledAPIs == ["osapi_compute", "metadata"])
        #expect(
            options.poolSize == 1000 && options.keepAlive && options.clientSocketTimeout == 900
                && options.maxHeaderLine == 16384)
        #expect(options.clientHeaderTimeout == 60)  // nginx's client_header_timeout
        #expect(!options.usesTLS)
    }

    @Test func aServiceTakesEveryOption() throws {
        let configuration = try ConfigFile.parse(
            """
            services:
              api:
                workers: 2
                port: 0
                listen: 127.0.0.1
                enabled_apis: osapi_compute, metadata
                pool_size: 10
                keep_alive: false
                client_socket_timeout: 2.5
                client_header_timeout: 0.5
                max_header_line: 4096
                cert_file: /c.pem
                key_file: /k.pem
                access_log: true
            """, path: "t.yaml")
        let http = try #require(configuration.services.first).http
        #expect(http.enabledAPIs == ["osapi_compute", "metadata"])
        #expect(http.poolSize == 10 && !http.keepAlive && http.clientSocketTimeout == 2.5 && http.maxHeaderLine == 4096)
        #expect(http.clientHeaderTimeout == 0.5)
        #expect(http.certFile == "/c.pem" && http.keyFile == "/k.pem" && http.accessLog)
    }

    @Test func badValuesNameTheOptionAndLine() {
        func error(_ yaml: String) -> String {
            do {
                _ = try ConfigFile.parse(yaml, path: "t.yaml")
                return "no error"
            } catch { return error.description }
        }
        #expect(
            error("services:\n  api:\n    pool_size: 0\n") == "t.yaml:3: services.api.pool_size must be >= 1, got 0")
        #expect(
            error("services:\n  api:\n    client_socket_timeout: -1\n").contains("client_socket_timeout must be >= 0"))
        #expect(
            error("services:\n  api:\n    client_header_timeout: -1\n")
                == "t.yaml:3: services.api.client_header_timeout must be >= 0, got -1")
        #expect(error("services:\n  api:\n    keep_alive: maybe\n").contains("keep_alive must be true or false"))
        #expect(
            error("services:\n  api:\n    cert_file: /c.pem\n").contains(
                "cert_file and key_file must be given together"))
        #expect(
            error("services:\n  api:\n    enabled_apis: []\n").contains("enabled_apis must be one or more app names"))
        #expect(error("services:\n  api:\n    pool: 3\n").contains("unknown option 'services.api.pool'"))
    }
}
