import ForkwatchRPC
import Testing

/// oslo's `TransportURL.parse` for one broker.
@Suite struct RabbitURLTests {
    @Test func usersPortsAndVirtualHosts() throws {
        let full = try RabbitTransport.parse("rabbit://nova:p%40ss@mq.example.org:5673/openstack")
        #expect(
            full
                == RabbitTransport.Address(
                    host: "mq.example.org", port: 5673, user: "nova", password: "p@ss", virtualHost: "openstack"))
        let bare = try RabbitTransport.parse("rabbit://")
        #expect(
            bare
                == RabbitTransport.Address(
                    host: "localhost", port: 5672, user: "guest", password: "guest", virtualHost: "/"))
        #expect(try RabbitTransport.parse("rabbit://u:p@h//").virtualHost == "/")
        #expect(try RabbitTransport.parse("rabbit://u:p@h:5672/?rabbit_quorum_queue=true").virtualHost == "/")
        #expect(try RabbitTransport.parse("rabbit://u:p@[::1]:5672/").host == "::1")
    }

    @Test func whatItRefuses() {
        #expect(throws: (any Error).self) { try RabbitTransport.parse("amqp://h") }
        #expect(throws: (any Error).self) { try RabbitTransport.parse("rabbit://h:99999/") }
        #expect(throws: (any Error).self) { try RabbitTransport.parse("rabbit://a@h1:5672,b@h2:5672/") }
    }
}
