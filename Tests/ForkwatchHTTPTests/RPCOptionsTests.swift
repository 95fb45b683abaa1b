import Forkwatch
import ForkwatchCore
import Testing

@testable import ForkwatchCLI

/// oslo's `transport_url` and `control_exchange` in a config file.
@Suite struct RPCOptionsTests {
    @Test func theTransportAndTheExchangeAreRead() throws {
        let configuration = try ConfigFile.parse(
            "transport_url: rabbit://nova:s3cret@mq:5672/os\ncontrol_exchange: nova\n", path: "t.yaml")
        #expect(configuration.transportURL == "rabbit://nova:s3cret@mq:5672/os")
        #expect(configuration.controlExchange == "nova")
        #expect(LauncherConfiguration().controlExchange == "openstack" && LauncherConfiguration().transportURL == nil)
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
