import ForkwatchCore

/// The right column: the throttle of each service, then the periodic tasks, the accept queue
/// and the RPC traffic.
extension DashboardRenderer {
    typealias Line = (text: String, style: Frame.Style)

    /// Returns the rows that hold a panel title (the separator joins them).
    static func drawRightColumn(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) -> Set<Int>
    {
        let world = model.shown
        let left = layout.rightColumn
        let textWidth = layout.rightWidth - 1
        var titles: Set<Int> = []
        var row = layout.bodyRows.lowerBound
        let queueLines = acceptQueueLines(world, width: textWidth - 1, unicode: canvas.unicode)
        let rpcLines = Array(rpcLines(world, width: textWidth - 1).prefix(7))
        let taskLines = periodicLines(world, width: textWidth - 1)
        // The bottom panels keep their rows; the throttle and the tasks share the rest.
        let reserved = (queueLines.count + 1) + (rpcLines.count + 1)
        let bottom = layout.bodyRows.upperBound - reserved - min(taskLines.count, 10) - 1

        titles.insert(row)
        canvas.title("THROTTLE", row: row, from: left, to: layout.width)
        row += 1
        if world.services.isEmpty {
            canvas.put("  no services yet", row: row, column: left, style: Frame.Style(dim: true), maxWidth: textWidth)
            row += 1
        }
        let perService = world.services.isEmpty ? 0 : min(8, max(1, (bottom - row) / world.services.count))
        for (index, service) in world.services.enumerated() {
            let lines = throttleLines(service, world: world, width: textWidth - 1, count: perService, canvas: canvas)
            if row + lines.count > bottom {
                let more = world.services.count - index
                canvas.put(
                    " +\(more) more service\(more == 1 ? "" : "s")", row: min(row, bottom - 1), column: left,
                    style: Frame.Style(dim: true), maxWidth: textWidth)
                row = bottom
                break
            }
            for line in lines {
                canvas.put(" " + line.text, row: row, column: left, style: line.style, maxWidth: textWidth)
                row += 1
            }
        }
        titles.insert(row)
        canvas.title("PERIODIC TASKS", row: row, from: left, to: layout.width)
        row += 1
        let taskRoom = max(1, layout.bodyRows.upperBound - reserved - row)
        for (index, line) in taskLines.enumerated() where index < taskRoom {
            let text =
                index == taskRoom - 1 && taskLines.count > taskRoom ? "+\(taskLines.count - index) more" : line.text
            canvas.put(" " + text, row: row, column: left, style: line.style, maxWidth: textWidth)
            row += 1
        }
        // The bottom panels: a title, then their lines while rows are left.
        for (title, lines) in [("ACCEPT QUEUE", queueLines), ("RPC", rpcLines)] where row < layout.bodyRows.upperBound {
            titles.insert(row)
            canvas.title(title, row: row, from: left, to: layout.width)
            row += 1
            for line in lines where row < layout.bodyRows.upperBound {
                canvas.put(" " + line.text, row: row, column: left, style: line.style, maxWidth: textWidth)
                row += 1
            }
        }
        return titles
    }

    /// The RPC panel: per topic and method, messages handled and failed by all its workers,
    /// in flight now, and the slowest worker's p95 handling time.
    static func rpcLines(_ world: DashboardWorld, width: Int) -> [Line] {
        guard !world.rpc.isEmpty else { return [(" no RPC traffic", Frame.Style(dim: true))] }
        struct Total { var handled = 0, failures = 0, inFlight = 0, p95: Double? }
        var totals: [String: [String: Total]] = [:]
        for (pid, entry) in world.rpc {
            let alive = world.workers[pid].map { $0.state != .gone } ?? false
            for stats in entry.methods {
                var total = totals[entry.topic, default: [:]][stats.method, default: Total()]
                total.handled += stats.handled
                total.failures += stats.failures
                if alive {
                    total.inFlight += stats.inFlight
                    if let p95 = stats.p95 { total.p95 = max(total.p95 ?? 0, p95) }
                }
                totals[entry.topic, default: [:]][stats.method] = total
            }
        }
        // At 80 columns the failures column goes (they still colour the row).
        let wide = width >= 30
        let nameWidth = max(6, width - 7 - (wide ? 4 : 0) - 6)
        var lines: [Line] = [
            (
                pad("method", nameWidth) + lpad("done", 7) + (wide ? lpad("err", 4) : "") + lpad("p95", 6),
                Frame.Style(dim: true)
            )
        ]
        for topic in totals.keys.sorted() {
            if totals.count > 1 { lines.append((topic, Frame.Style(bold: true))) }
            for (method, total) in totals[topic]!.sorted(by: { $0.key < $1.key }) {
                let style = total.failures > 0 ? Frame.Style(color: .yellow) : Frame.Style()
                let done = total.inFlight > 0 ? "\(total.handled)+\(total.inFlight)" : "\(total.handled)"
                lines.append(
                    (
                        pad(method, nameWidth) + lpad(done, 7) + (wide ? lpad("\(total.failures)", 4) : "")
                            + lpad(total.p95.map(Self.millis) ?? "-", 6), style
                    ))
            }
        }
        return lines
    }

    /// The ACCEPT QUEUE panel: per listening service, `backlog 3/128` and a sparkline of the
    /// depth sampled each second.
    static func acceptQueueLines(_ world: DashboardWorld, width: Int, unicode: Bool) -> [Line] {
        guard !world.acceptQueues.isEmpty else { return [(" no listening socket", Frame.Style(dim: true))] }
        var lines: [Line] = []
        for (service, queue) in world.acceptQueues.sorted(by: { $0.key < $1.key }) {
            let full = queue.limit > 0 && queue.depth >= queue.limit
            let style =
                full
                ? Frame.Style(bold: true, color: .red) : queue.depth > 0 ? Frame.Style(color: .yellow) : Frame.Style()
            lines.append(("\(service) \(queue.address)", Frame.Style(bold: true)))
            let spark = DashboardFormat.sparkline(
                queue.history.map(Double.init), width: max(1, min(queue.history.count, width - 16)),
                ceiling: Double(max(1, queue.limit)), unicode: unicode)
            lines.append(("backlog \(queue.depth)/\(queue.limit) " + spark, style))
        }
        return lines
    }

    /// The PERIODIC TASKS panel: a header, then per task its spacing, last and p95 run time and
    /// failures, grouped by service; the service's last heartbeat after its tasks.
    static func periodicLines(_ world: DashboardWorld, width: Int) -> [Line] {
        guard !world.tasks.isEmpty || !world.heartbeats.isEmpty else {
            return [(" no periodic tasks", Frame.Style(dim: true))]
        }
        // Full columns when the panel is wide; at 80 columns only the last run and the failures.
        let wide = width >= 36
        let numbers = wide ? 5 + 6 + 6 + 4 : 6 + 4
        let nameWidth = max(6, width - numbers)
        let header =
            wide
            ? pad("task", nameWidth) + lpad("every", 5) + lpad("last", 6) + lpad("p95", 6) + lpad("err", 4)
            : pad("task", nameWidth) + lpad("last", 6) + lpad("err", 4)
        var lines: [Line] = [(header, Frame.Style(dim: true))]
        let services = (world.tasks.map(\.service) + world.heartbeats.keys.sorted()).reduce(into: [String]()) {
            if !$0.contains($1) { $0.append($1) }
        }
        for service in services {
            if services.count > 1 || world.tasks.isEmpty { lines.append((service, Frame.Style(bold: true))) }
            for row in world.tasks where row.service == service {
                let t = row.timings
                let style = t.failures > 0 && t.lastError != nil ? Frame.Style(color: .yellow) : Frame.Style()
                let numbers =
                    wide
                    ? lpad(DashboardFormat.seconds(t.spacing).filter { $0 != " " }, 5) + lpad(Self.millis(t.last), 6)
                        + lpad(Self.millis(t.p95), 6)
                    : lpad(Self.millis(t.last), 6)
                lines.append((pad(row.task, nameWidth) + numbers + lpad("\(t.failures)", 4), style))
            }
            if let beat = world.heartbeats[service] {
                let count = beat.reportCount.map(String.init) ?? "?"
                let text =
                    beat.ok
                    ? (wide ? "heartbeat: report_count \(count)" : "heartbeat #\(count)")
                    : "heartbeat FAILING: \(beat.error ?? "?")"
                lines.append((text, beat.ok ? Frame.Style(dim: true) : Frame.Style(bold: true, color: .red)))
            }
        }
        return lines
    }

    static func millis(_ seconds: Double) -> String {
        seconds < 1
            ? "\(DashboardFormat.whole((seconds * 1000).rounded()))ms"
            : DashboardFormat.seconds(seconds).filter { $0 != " " }
    }

    /// A service's throttle in `count` lines at most, most important first: its name and
    /// state, the pending fork, the oslo window, forks per second, crash-loop state, then why
    /// the last fork waited, restarts and last exit, a rolling restart in progress.
    static func throttleLines(
        _ service: DashboardWorld.Service, world: DashboardWorld, width: Int, count: Int, canvas: Canvas
    ) -> [Line] {
        let now = world.now
        let alive = world.workers.values.filter { $0.service == service.name && $0.state != .gone }.count
        let wanted = service.wanted ?? max(1, alive)
        var lines: [Line] = []

        let name = "\(service.name) \(canvas.times)\(wanted)"
        switch service.state {
        case .running: lines.append((name, Frame.Style(bold: true)))
        case .crashLooping: lines.append((name + " CRASH-LOOP", Frame.Style(bold: true, color: .yellow)))
        case .failed: lines.append((name + " FAILED", Frame.Style(bold: true, color: .red)))
        }

        if let due = service.pendingForkAt {
            let wait = due - now
            lines.append(
                (
                    wait > 0 ? " next fork in " + DashboardFormat.seconds(wait) : " next fork due now",
                    Frame.Style(bold: true, color: .yellow)
                ))
        } else if service.state == .failed {
            lines.append((" no respawn until a reload", Frame.Style(bold: true, color: .red)))
        } else {
            lines.append((" no fork pending", Frame.Style(dim: true)))
        }

        lines.append(windowLine(service, wanted: wanted, now: now, width: width))

        let label = " forks/s "
        let buckets = forksPerSecond(service.forkHistory, now: now, seconds: min(30, max(1, width - label.count)))
        lines.append(
            (
                label
                    + DashboardFormat.sparkline(
                        buckets, width: buckets.count, ceiling: max(1, buckets.max() ?? 0), unicode: canvas.unicode),
                Frame.Style(color: .green)
            ))

        switch service.state {
        case .running: lines.append((" crash-loop: no", .plain))
        case .crashLooping: lines.append((" crash-loop: yes", Frame.Style(bold: true, color: .yellow)))
        case .failed: lines.append((" crash-loop: failed", Frame.Style(bold: true, color: .red)))
        }

        if let last = service.lastThrottle {
            // Why the last fork waited (the window line above says how it stands now).
            let (delay, span) = (DashboardFormat.seconds(last.delay), DashboardFormat.seconds(last.span))
            lines.append(
                (
                    longest(
                        [
                            " last wait \(delay): \(last.forks) forks in \(span)",
                            " waited \(delay): \(last.forks) in \(span)",
                        ], width),
                    Frame.Style(color: .yellow)
                ))
        }
        var restarts = [" restarts \(service.restarts)"]
        if let exit = service.lastExit {
            let how = DashboardFormat.exitShort(exit.status, width: 9)
            restarts = [
                " restarts \(service.restarts), last \(exit.pid) \(how)", " restarts \(service.restarts), last \(how)",
                " \(service.restarts) rst, last \(how)",
            ]
        }
        lines.append((longest(restarts, width), .plain))
        if let remaining = service.rollingRemaining {
            lines.append((" rolling restart: \(remaining) old left", Frame.Style(color: .cyan)))
        }
        return Array(lines.prefix(count)).map {
            ($0.text.count > width ? DashboardFormat.fit($0.text, width) : $0.text, $0.style)
        }
    }

    /// oslo's rule as a sentence: the last `workers + 1` forks and the span they cover, against
    /// the window of `workers × interval` seconds. Longest wording that fits.
    private static func windowLine(_ service: DashboardWorld.Service, wanted: Int, now: Double, width: Int) -> Line {
        guard service.interval > 0 else { return (" throttle off (interval 0)", Frame.Style(dim: true)) }
        let forks = service.forkTimes.count
        guard let oldest = service.forkTimes.first else { return (" window: no forks yet", Frame.Style(dim: true)) }
        let span = DashboardFormat.seconds(now - oldest)
        let window = DashboardFormat.seconds(Double(wanted) * service.interval)
        let candidates: [String]
        var style = Frame.Style.plain
        if forks > wanted {
            let tight = now - oldest < Double(wanted) * service.interval
            let comparison = tight ? "<" : "≥"
            if tight { style = Frame.Style(color: .yellow) }
            candidates = [
                " window \(forks) forks in \(span) \(comparison) \(window)",
                " \(forks) forks in \(span) \(comparison) \(window)",
                " \(forks) forks/\(span) \(comparison) \(window)",
            ]
        } else {
            candidates = [
                " window \(forks) of \(wanted + 1) forks: no wait",
                " \(forks)/\(wanted + 1) forks: no wait",
            ]
        }
        return (longest(candidates, width), style)
    }

    /// The first wording that fits (they come longest first), else the shortest one.
    private static func longest(_ candidates: [String], _ width: Int) -> String {
        candidates.first { $0.count <= width } ?? candidates.last!
    }

    /// Forks in each of the last `seconds` one-second buckets, oldest first.
    static func forksPerSecond(_ times: [Double], now: Double, seconds: Int) -> [Double] {
        var buckets = [Double](repeating: 0, count: seconds)
        for time in times {
            let age = now - time
            guard age >= 0 else { continue }
            let bucket = seconds - 1 - DashboardFormat.whole(age)
            if bucket >= 0 && bucket < seconds { buckets[bucket] += 1 }
        }
        return buckets
    }
}

/// Table cells of the right column's panels: names cut to the column (no ellipsis: every
/// character counts at 80 columns), numbers right-aligned.
private func pad(_ text: String, _ width: Int) -> String { DashboardFormat.padRight(text, width, ellipsis: "") }
private func lpad(_ text: String, _ width: Int) -> String { DashboardFormat.padLeft(text, width, ellipsis: "") }
