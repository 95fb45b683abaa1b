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
