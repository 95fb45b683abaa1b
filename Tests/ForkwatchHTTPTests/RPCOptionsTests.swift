import Forkwatch
import ForkwatchCore
import Testing

@testable import ForkwatchCLI

/// oslo's `transport_url`, `control_exchange` and `rabbit_*` reconnect options in a config file.
@Suite struct RPCOptionsTests {
    @Test func theTransportAndTheExchangeAreRead() throws {
        let configuration = try ConfigFile.parse(
            "transport_url: rabbit://nova:s3cret@mq:5672/os\ncontrol_exchange: nova\n", path: "t.yaml")
        #expect(configuration.transportURL == "rabbit://nova:s3cret@mq:5672/os")
        #expect(configuration.controlExchange == "nova")
        #expect(LauncherConfiguration().controlExchange == "openstack" && LauncherConfiguration().transportURL == nil)
    }

    /// oslo's reconnect options, by their names, become the RabbitMQ consumers' schedule.
    @Test func theReconnectOptionsAreRead() throws {
        let configuration = try ConfigFile.parse(
            "rabbit_retry_interval: 2\nrabbit_retry_backoff: 0\nrabbit_interval_max: 10\n", path: "t.yaml")
        #expect(
            configuration.reconnectBackoff
                == ReconnectBackoff(retryInterval: 2, retryBackoff: 0, intervalMax: 10, reconnectDelay: 1))
        #expect(LauncherConfiguration().reconnectBackoff == ReconnectBackoff())
        do {
            _ = try ConfigFile.parse("rabbit_interval_max: 0\n", path: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("rabbit_interval_max must be >= 1, got 0"))
        }
    }

    @Test func aTransportThatIsNeitherIsRefused() {
        do {
            _ = try ConfigFile.parse("transport_url: kafka://x\n", path: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("transport_url must be sqlite: or rabbit://"))
        }
    }
}

/// The key lists the config file's unknown-key error names are the keys it reads.
@Suite struct ConfigKeyListTests {
    @Test func everyListedTopLevelKeyIsRead() {
        for key in Settings.topLevelKeys where key != "services" {
            var error = ""
            do { _ = try ConfigFile.parse("\(key): x\n", path: "t.yaml") } catch let failure { error = failure.message }
            #expect(!error.contains("unknown option"), "\(key): \(error)")
        }
    }

    @Test func everyListedServiceKeyIsRead() {
        for key in Settings.serviceKeys {
            let yaml = "services:\n  idle:\n    \(key): x\n"
            var error = ""
            do { _ = try ConfigFile.parse(yaml, path: "t.yaml") } catch let failure { error = failure.message }
            #expect(!error.contains("unknown option"), "\(key): \(error)")
        }
    }
}
