import ForkwatchCore
import Glibc
import Testing

@testable import ForkwatchHTTP

/// The pure parts of the HTTP bounds: what the accept back-off says and when, and which
/// addresses get the no-authentication warning.
@Suite struct HTTPBoundsTests {

    /// Failures every 0.1 s (the gate's back-off) for 2.5 s, then an accept: a line at the first
    /// failure and then one a second, each counting the failures it stands for.
    @Test func theBackOffSpeaksAtMostOnceASecond() {
        var backOff = AcceptBackOff()
        var lines: [(Double, String)] = []
        for tick in 0..<25 {
            let now = 100 + Double(tick) / 10
            if let line = backOff.failed(errno: EMFILE, now: now, open: 80, fdLimit: 96) { lines.append((now, line)) }
        }
        #expect(lines.map(\.0) == [100, 101, 102])
        #expect(lines[0].1.contains("EMFILE; 80 connections open, fd limit 96"))
        #expect(lines[0].1.contains("backing off, next try in 100 ms or when a connection closes"))
        #expect(!lines[0].1.contains("more failed accepts"))
        #expect(lines[1].1.hasSuffix("9 more failed accepts since the last line"))
        #expect(backOff.accepted(now: 102.5) == "accepting again after 2.5 s of back-off (25 failed accepts)")
        // Over: the next accept says nothing, the next failure speaks at once.
        #expect(backOff.accepted(now: 103) == nil)
        #expect(backOff.failed(errno: ENFILE, now: 103.05, open: 1, fdLimit: 96)?.contains("ENFILE") == true)
    }

    @Test(
        arguments: [
            ("0.0.0.0:8774", nil, true), ("[::]:8774", nil, true), ("10.1.2.3:80", nil, true),
            ("127.0.0.1:8774", nil, false), ("127.0.1.1:8774", nil, false), ("[::1]:8774", nil, false),
            ("0.0.0.0:8774", "/etc/ca.pem", false),
        ] as [(String, String?, Bool)])
    func bindingBeyondLoopbackWithoutAuthenticationIsWarnedAbout(address: String, caFile: String?, warned: Bool) {
        var options = HTTPOptions()
        if caFile != nil { (options.certFile, options.keyFile, options.caFile) = ("/c.pem", "/k.pem", caFile) }
        let warning = WSGIService.exposureWarning(address: address, options: options)
        #expect((warning != nil) == warned, "\(address): \(warning ?? "no warning")")
        if let warning { #expect(warning.contains("listens on \(address)") && warning.contains("no authentication")) }
    }
}
