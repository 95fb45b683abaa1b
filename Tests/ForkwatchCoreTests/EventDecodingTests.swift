import Testing

@testable import ForkwatchCore

/// Reading events back: what the master writes reads back the same, and a number it never
/// writes is an error naming the field (and, in a file, the line), never a trap.
@Suite struct EventDecodingTests {
    static let goodEvents: [Event.Kind] = [
        .masterStarted(
            pid: 4211, services: [ServiceSpec(name: "idle", program: .builtin("idle"), workers: 2)], config: "x=1"),
        .fork(pid: 4212, service: "idle", reason: .respawn, generation: 3),
        .forkFailed(service: "idle", errno: 11, message: "Resource temporarily unavailable"),
        .forkRefused(service: "idle", threads: -1),
        .ready(pid: 4212, service: "idle", after: 0.000765),
        .exit(
            pid: 4212, service: "idle", status: .signaled(.kill, coreDumped: false), rawStatus: 9, uptime: 12.5,
            expected: false),
        .exit(pid: 4213, service: nil, status: .exited(code: 255), rawStatus: 0xFF00, uptime: nil, expected: true),
        .signalReceived(signal: .term, senderPid: 0),
        .signalSent(
            pid: 4212, service: "idle", signal: Signal(rawValue: 64), reason: "stop", origin: "you", error: nil),
        .throttle(service: "idle", forks: 4, span: 2.962171, window: 3, delay: 1),
        .scale(service: "idle", from: 2, to: 100_000, reason: "ttin"),
        .rollingStep(service: "idle", newPid: 5000, oldPid: 4212, remaining: 1),
        .stopping(mode: .graceful, timeout: 60, workers: 2),
        .stopped(exitCode: 1),
        .heartbeat(pid: 4212, service: "scheduler", ok: false, reportCount: nil, error: "/x.sqlite: deleted"),
        .heartbeat(pid: 4212, service: "scheduler", ok: true, reportCount: Int(Int32.max), error: nil),
        .stats(samples: [ProcessSample(pid: 4211, cpuPercent: 350.25, rssBytes: 1 << 40, state: "S", threads: 1)]),
    ]

    @Test(arguments: goodEvents)
    func whatTheMasterWritesReadsBackTheSame(kind: Event.Kind) throws {
        let event = Event(mono: 4109.324434, wall: 1_795_680_995.299132, kind: kind)
        let line = EventCodec.encode(event)
        #expect(try EventCodec.decode(line) == event, "\(line)")
    }

    /// A fork line with one field replaced by raw JSON text.
    static func fork(_ field: String, _ raw: String) -> String {
        var fields = [
            "\"v\":1", "\"type\":\"fork\"", "\"wall\":1795680995.3", "\"mono\":4109.3", "\"pid\":24759",
            "\"service\":\"idle\"", "\"reason\":\"initial\"", "\"generation\":1",
        ]
        fields = fields.map { $0.hasPrefix("\"\(field)\":") ? "\"\(field)\":\(raw)" : $0 }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Each line, and the words its error must contain.
    static let badLines: [(String, String)] = [
        (fork("mono", "1e19"), "'mono' is 1e+19"),
        (fork("mono", "-1e19"), "'mono'"),
        (fork("wall", "1e300"), "'wall'"),
        (fork("mono", "1e999"), "invalid JSON"),  // an infinity is refused by the parser
        (fork("mono", "NaN"), "invalid JSON"),
        (fork("mono", "\"12\""), "'mono' is the string"),
        (fork("pid", "-5"), "'pid' is -5: expected an integer from 1"),
        (fork("pid", "0"), "'pid' is 0"),
        (fork("pid", "4294967296"), "'pid' is 4294967296"),
        (fork("pid", "1.5"), "'pid' is 1.5"),
        (fork("pid", "9223372036854775808"), "'pid'"),
        (fork("generation", "1e18"), "'generation'"),
        (fork("generation", "-1"), "'generation' is -1"),
        (
            #"{"v":1,"type":"exit","wall":1,"mono":1,"pid":7,"service":"x","how":"signaled","signo":2147483648,"core_dumped":false,"status":9,"uptime":1,"expected":false}"#,
            "'signo' is 2147483648"
        ),
        (
            #"{"v":1,"type":"exit","wall":1,"mono":1,"pid":7,"service":"x","how":"exited","code":300,"status":0,"uptime":1,"expected":false}"#,
            "'code' is 300"
        ),
        (
            #"{"v":1,"type":"exit","wall":1,"mono":1,"pid":7,"service":"x","how":"exited","code":1,"status":99999999999,"uptime":1,"expected":false}"#,
            "'status'"
        ),
        (
            #"{"v":1,"type":"exit","wall":1,"mono":1,"pid":7,"service":"x","how":"exited","code":1,"status":256,"uptime":1e19,"expected":false}"#,
            "'uptime' is 1e+19"
        ),
        (#"{"v":1,"type":"fork_failed","wall":1,"mono":1,"service":"x","errno":-1,"message":"m"}"#, "'errno' is -1"),
        (#"{"v":1,"type":"stopped","wall":1,"mono":1,"exit_code":4294967297}"#, "'exit_code'"),
        (#"{"v":1,"type":"scale","wall":1,"mono":1,"service":"x","from":1,"to":-3,"reason":""}"#, "'to' is -3"),
        (
            #"{"v":1,"type":"heartbeat","wall":1,"mono":1,"pid":7,"service":"x","ok":true,"report_count":9000000000000000,"error":null}"#,
            "'report_count'"
        ),
        (
            #"{"v":1,"type":"stats","wall":1,"mono":1,"samples":[{"pid":-1,"cpu":0,"rss":0,"state":"S","threads":1}]}"#,
            "'samples.pid' is -1"
        ),
        (
            #"{"v":1,"type":"stats","wall":1,"mono":1,"samples":[{"pid":1,"cpu":1e300,"rss":0,"state":"S","threads":1}]}"#,
            "'samples.cpu'"
        ),
        (
            #"{"v":1,"type":"task_run","wall":1,"mono":1,"pid":7,"service":"x","task":"t","started":1,"duration":1,"ok":true,"error":null,"next_due":null,"timings":{"runs":-2}}"#,
            "'timings.runs' is -2"
        ),
        (
            #"{"v":1,"type":"signal_received","wall":1,"mono":1,"signal":"SIGTERM","signo":15,"sender_pid":-7}"#,
            "'sender_pid' is -7"
        ),
        ("not json at all", "invalid JSON"),
        (#"{"v":1,"mono":1,"wall":1}"#, "no 'type'"),
    ]

    @Test(arguments: badLines)
    func anOutOfRangeNumberIsAnErrorNamingTheFieldAndTheLine(line: String, words: String) {
        // Alone: the decoder's error names the field.
        #expect(throws: EventCodec.DecodeError.self) { try EventCodec.decode(line) }
        do {
            _ = try EventCodec.decode(line)
        } catch {
            #expect(error.message.contains(words), "\(error.message)")
        }
        // In a file, after a good line and a blank one: the problem names line 3, and the good
        // line after it still reads.
        var reader = EventFileReader()
        reader.append(Array((Self.fork("pid", "1") + "\n\n" + line + "\n" + Self.fork("pid", "2") + "\n").utf8))
        reader.finish()
        var items: [String] = []
        while let item = reader.next() {
            switch item {
            case .event(let event, let number): items.append("\(number): \(event.kind)")
            case .problem(let problem): items.append("\(problem)")
            }
        }
        #expect(items.count == 3, "\(items)")
        #expect(items.first?.hasPrefix("1: fork(pid: 1") == true, "\(items)")
        #expect(items.dropFirst().first?.hasPrefix("line 3: ") == true, "\(items)")
        #expect(items.dropFirst().first?.contains(words) == true, "\(items)")
        #expect(items.last?.hasPrefix("4: fork(pid: 2") == true, "\(items)")
    }

    @Test func aLoneSurrogateFollowedByAnyEscapeNeverTraps() throws {
        // \uDBFF followed by \u0000 once overflowed UInt32 arithmetic in the parser.
        let value = try JSONValue.parse(#""\uDBFF\u0000x""#)
        #expect(value.string == "\u{FFFD}\u{0}x")
        #expect(try JSONValue.parse(#""\uD83D\uDE00""#).string == "😀")
    }

    @Test func chunksOfAnySizeGiveTheSameNumberedEvents() {
        let lines = (1...50).map { Self.fork("pid", "\($0)") }
        // A torn last line (no newline) is read too; blank lines count but give nothing.
        let text = lines.prefix(25).joined(separator: "\n") + "\n\n\r\n" + lines.dropFirst(25).joined(separator: "\n")
        for chunk in [1, 7, 100, 100_000] {
            var reader = EventFileReader()
            let bytes = Array(text.utf8)
            var numbers: [Int] = []
            var pids: [Int32] = []
            var start = 0
            while true {
                while let item = reader.next() {
                    guard case .event(let event, let line) = item, case .fork(let pid, _, _, _) = event.kind else {
                        Issue.record("unexpected \(item)")
                        continue
                    }
                    numbers.append(line)
                    pids.append(pid)
                }
                if start >= bytes.count { break }
                reader.append(Array(bytes[start..<min(bytes.count, start + chunk)]))
                start += chunk
            }
            reader.finish()
            while let item = reader.next() {
                if case .event(let event, let line) = item, case .fork(let pid, _, _, _) = event.kind {
                    numbers.append(line)
                    pids.append(pid)
                }
            }
            #expect(pids == (1...50).map(Int32.init), "chunk \(chunk)")
            #expect(numbers == Array(1...25) + Array(28...52), "chunk \(chunk)")
        }
    }

    @Test func aLineOverTheLimitIsSkippedAsItArrivesNotHeld() {
        var reader = EventFileReader(maxLineBytes: 1000)
        reader.append(Array((Self.fork("pid", "1") + "\n").utf8))
        var items: [EventFileReader.Item] = []
        while let item = reader.next() { items.append(item) }
        // 10 MB of one line, in 64 KiB chunks: the reader never holds more than a chunk and the limit.
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65_536)
        for _ in 0..<160 {
            reader.append(chunk)
            while let item = reader.next() { items.append(item) }
        }
        reader.append(Array(("xyz\n" + Self.fork("pid", "2") + "\n").utf8))
        while let item = reader.next() { items.append(item) }
        reader.finish()
        while let item = reader.next() { items.append(item) }
        let described = items.map { item -> String in
            switch item {
            case .event(let event, let line): "\(line): \(event.kind)"
            case .problem(let problem): "\(problem)"
            }
        }
        #expect(described.count == 3, "\(described)")
        #expect(described.dropFirst().first == "line 2: longer than 1000 bytes, skipped")
        #expect(described.last?.hasPrefix("3: fork(pid: 2") == true, "\(described)")
    }
}

/// The parser's fast path for plain numbers gives exactly what the full conversion gives.
@Suite struct JSONNumberTests {
    @Test func plainNumbersReadExactlyAsTheStandardConversion() throws {
        var generator = SystemRandomNumberGenerator()
        var texts = [
            "0", "-0", "1", "-1", "0.5", "4109.324434", "1795680995.299132", "999999999999999",
            "9999999999999999", "123456789012345678", "0.000001", "1e19", "-2.5E-3", "12.", ".5",
        ]
        for _ in 0..<20_000 {
            let whole = UInt64.random(in: 0...2_000_000_000, using: &generator)
            let micros = UInt64.random(in: 0...999_999, using: &generator)
            let fraction = String(micros)
            texts.append("\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction)
            // At most 15 digits: the fast path (longer ones fall back to Double(text) itself).
            texts.append("-\(UInt64.random(in: 0...999_999_999_999_999, using: &generator))")
        }
        for text in texts {
            let parsed = try JSONValue.parse(text).double
            #expect(parsed == Double(text), "\(text)")
            #expect(parsed?.sign == Double(text)?.sign, "\(text)")
        }
        for bad in ["-", "1.2.3", "--5", "1e999", "+"] {
            #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(bad) }
        }
    }
}
