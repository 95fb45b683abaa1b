// forkwatch-bench: measurements that need forkwatch's own code, for bench/dashboard.py.
//   forkwatch-bench frames --socket PATH [--frames N] [--width W] [--height H]
//   forkwatch-bench throughput --socket PATH [--seconds S]
// Each prints one JSON line of figures.
import Forkwatch
import ForkwatchCore
import ForkwatchRPC
import ForkwatchServices
import ForkwatchTUI

#if canImport(Glibc)
import Glibc
#endif

func option(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let at = args.firstIndex(of: name), at + 1 < args.count { return args[at + 1] }
    return fallback
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func finish() -> Never {
    fflush(nil)
    Posix.exitNow(0)
}

func ms(_ seconds: Double) -> String { JSONObject.number(seconds * 1000, decimals: 3) }

let mode = CommandLine.arguments.dropFirst().first ?? ""

if mode == "periodic" {
    // The runner's idle tick: a pass over 3 tasks when none is due.
    var schedule = PeriodicSchedule(
        tasks: [
            PeriodicTaskSpec(name: "a", spacing: 60), PeriodicTaskSpec(name: "b", spacing: 300),
            PeriodicTaskSpec(name: "c", spacing: 10),
        ], now: 0)
    let ticks = 2_000_000
    var idle = 0.0
    let start = Posix.monotonicNow()
    for i in 0..<ticks { idle += schedule.runDue(now: Double(i % 9) + 0.5) { 0.5 }.idleFor }
    let elapsed = Posix.monotonicNow() - start
    print(
        "{\"ticks\":\(ticks),\"ns_per_tick\":\(JSONObject.number(elapsed / Double(ticks) * 1e9, decimals: 1)),\"checksum\":\(JSONObject.number(idle, decimals: 0))}"
    )
    finish()
}

if mode == "rpc-casts" || mode == "rpc-calls" {
    // RPC against running scheduler workers (bench/rpc.py starts them):
    //   rpc-casts: N casts one by one (as oslo's client sends them), then the time until the
    //   topic queue is empty; rpc-calls: N sequential calls of `echo`, latency p50/p99.
    let url = option("--transport-url", "sqlite:")
    let path = option("--db", "")
    let count = Int(option("--count", "2000"))!
    let transport = try RPCTransports.make(url: url, database: path)
    let client = RPCClient(transport: transport, target: RPCTarget(topic: "scheduler"), timeout: 30)
    for _ in 0..<20 { _ = try client.call("echo") }  // connections, queues, warm caches
    if mode == "rpc-calls" {
        var latencies: [Double] = []
        let start = Posix.monotonicNow()
        for index in 0..<count {
            let began = Posix.monotonicNow()
            let reply = try client.call("echo", args: ["i": .number(Double(index))])
            latencies.append(Posix.monotonicNow() - began)
            precondition(reply["args"]?["i"]?.int == index, "wrong reply \(reply)")
        }
        let total = Posix.monotonicNow() - start
        latencies.sort()
        print(
            "{\"mode\":\"rpc-calls\",\"n\":\(count),\"calls_per_s\":\(JSONObject.number(Double(count) / total, decimals: 1)),\"p50_ms\":\(ms(percentile(latencies, 0.5))),\"p99_ms\":\(ms(percentile(latencies, 0.99)))}"
        )
        finish()
    }
    let caster = client.prepare(version: "4.0")
    let start = Posix.monotonicNow()
    for index in 0..<count { try caster.cast("update_instance_info", args: ["host_name": .string("c\(index)")]) }
    let sent = Posix.monotonicNow() - start
    while try transport.depth(of: "scheduler") > 0 { Posix.sleep(seconds: 0.005) }
    let done = Posix.monotonicNow() - start
    print(
        "{\"mode\":\"rpc-casts\",\"n\":\(count),\"sent_per_s\":\(JSONObject.number(Double(count) / sent, decimals: 1)),\"handled_per_s\":\(JSONObject.number(Double(count) / done, decimals: 1)),\"seconds\":\(JSONObject.number(done, decimals: 3))}"
    )
    finish()
}

if mode == "heartbeat" {
    // The heartbeat path's capacity: N forked processes, each beating as fast as it can through
    // ServicesStore.beat (nova's UPDATE, one statement), into one SQLite file. Workers open their
    // connection after fork, as forkwatch's do.
    let path = option("--db", "/tmp/forkwatch-bench-heartbeat.sqlite")
    let workers = Int(option("--workers", "16"))!
    let seconds = Double(option("--seconds", "5"))!
    let setup = try ServicesStore(path: path)
    try setup.migrate()
    let row = try setup.register(host: "bench", binary: "forkwatch-bench", topic: "bench")
    let before = try setup.list().first { $0.id == row.id }?.report_count ?? 0
    let pipe = try Posix.pipe(nonblockingRead: false)
    let start = Posix.monotonicNow() + 0.3
    var children: [Int32] = []
    for _ in 0..<workers {
        let pid = try Posix.fork()
        if pid == 0 {
            Posix.close(pipe.read)
            var beats = 0
            do {
                let store = try ServicesStore(path: path)
                while Posix.monotonicNow() < start { Posix.sleep(seconds: 0.001) }
                while Posix.monotonicNow() < start + seconds {
                    _ = try store.beat(id: row.id!)
                    beats += 1
                }
            } catch {
                try? Posix.writeAll(2, "beat failed: \(error)\n")
            }
            try? Posix.writeAll(pipe.write, "\(beats)\n")
            Posix.exitNow(0)
        }
        children.append(pid)
    }
    Posix.close(pipe.write)
    var output: [UInt8] = []
    while let chunk = try? Posix.read(pipe.read, max: 4096), !chunk.isEmpty { output += chunk }
    for child in children {
        var status: Int32 = 0
        waitpid(child, &status, 0)
    }
    let sent = String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }.reduce(0, +)
    let after = try ServicesStore(path: path).list().first { $0.id == row.id }?.report_count ?? 0
    print(
        "{\"workers\":\(workers),\"seconds\":\(JSONObject.number(seconds, decimals: 1)),\"sent\":\(sent),"
            + "\"counted\":\(after - before),\"writes_per_s\":\(JSONObject.number(Double(sent) / seconds, decimals: 0))}"
    )
    finish()
}

let socket = option("--socket", ControlSocket.defaultPath)
let client = try ControlClient(path: socket)
try client.send(.subscribe)

switch mode {
case "frames":
    // A model fed from the live master (snapshot, then 2 s of events: forks, stats), then the
    // renderer timed on its own: what one dashboard refresh costs.
    var model = DashboardModel(title: "bench", mode: .live)
    let width = Int(option("--width", "200"))!
    let height = Int(option("--height", "60"))!
    let frames = Int(option("--frames", "200"))!
    let until = Posix.monotonicNow() + 2.5
    var applied = 0
    var applyTime = 0.0
    while Posix.monotonicNow() < until, let line = try client.readLine(timeout: max(0.01, until - Posix.monotonicNow()))
    {
        guard let event = try? EventCodec.decode(line) else { continue }
        let start = Posix.monotonicNow()
        model.apply(event)
        applyTime += Posix.monotonicNow() - start
        applied += 1
    }
    model.setNow(Posix.monotonicNow())
    model.setTerminalSize(width: width, height: height)
    var times: [Double] = []
    var workers = 0
    for _ in 0..<frames {
        let start = Posix.monotonicNow()
        let frame = DashboardRenderer.render(model, width: width, height: height)
        times.append(Posix.monotonicNow() - start)
        workers = frame.height
    }
    times.sort()
    print(
        "{\"width\":\(width),\"height\":\(height),\"frames\":\(frames),\"events_applied\":\(applied),"
            + "\"apply_mean_ms\":\(ms(applied > 0 ? applyTime / Double(applied) : 0)),"
            + "\"p50_ms\":\(ms(percentile(times, 0.5))),\"p99_ms\":\(ms(percentile(times, 0.99))),\"max_ms\":\(ms(times.last ?? 0)),\"rows\":\(workers)}"
    )
case "throughput":
    let seconds = Double(option("--seconds", "5"))!
    _ = try client.readLine()  // the snapshot
    let start = Posix.monotonicNow()
    var count = 0
    var bytes = 0
    while Posix.monotonicNow() - start < seconds,
        let line = try client.readLine(timeout: max(0.01, seconds - (Posix.monotonicNow() - start)))
    {
        count += 1
        bytes += line.utf8.count + 1
    }
    let elapsed = Posix.monotonicNow() - start
    print(
        "{\"events\":\(count),\"seconds\":\(JSONObject.number(elapsed, decimals: 3)),"
            + "\"events_per_s\":\(JSONObject.number(Double(count) / elapsed, decimals: 0)),"
            + "\"bytes_per_s\":\(JSONObject.number(Double(bytes) / elapsed, decimals: 0))}")
default:
    print("usage: forkwatch-bench frames|throughput --socket PATH")
}
