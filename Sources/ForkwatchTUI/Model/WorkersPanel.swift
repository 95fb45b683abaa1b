import ForkwatchCore

/// The WORKERS panel: the master at the root, its workers below grouped by service.
extension DashboardRenderer {
    static func drawWorkers(
        _ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout, rows: [DashboardModel.WorkerRow]
    ) {
        let world = model.shown
        let panelWidth = layout.leftWidth
        let selected =
            rows.firstIndex { $0.pid == model.selectedPid }
            ?? (rows.isEmpty ? nil : min(model.selectedRowHint, rows.count - 1))
        let top = layout.workerScrollTop(selected: selected, previousTop: model.workerScrollTop, rowCount: rows.count)

        var extra = ""
        if rows.count > layout.workerRows {
            extra = "\(top + 1)-\(min(rows.count, top + layout.workerRows)) of \(rows.count)"
        }
        if !model.filter.isEmpty { extra += (extra.isEmpty ? "" : ", ") + "filtered" }
        canvas.title(
            "WORKERS", row: layout.workersTitleRow, from: 0, to: panelWidth, extra: extra,
            focused: model.focus == .workers)

        let columns = WorkerColumns(panelWidth: panelWidth)
        for (column, start) in columns.starts {
            let text = column.rightAligned ? DashboardFormat.padLeft(column.title, column.width) : column.title
            canvas.put(
                text, row: layout.workersHeaderRow, column: start, style: Frame.Style(bold: true, color: .cyan),
                maxWidth: column.width)
        }

        if rows.isEmpty {
            canvas.put(
                "  waiting for the master's snapshot", row: layout.firstWorkerRow, column: 0,
                style: Frame.Style(dim: true), maxWidth: panelWidth)
        }
        for offset in 0..<layout.workerRows {
            let index = top + offset
            guard index < rows.count else { break }
            let screenRow = layout.firstWorkerRow + offset
            drawWorkerRow(&canvas, world, rows[index], columns: columns, row: screenRow)
            if index == selected {
                canvas.put(">", row: screenRow, column: 0, style: Frame.Style(bold: true))
                // Reverse video is the selection bar; the '>' says the same without it.
                canvas.frame.restyle(row: screenRow, from: 0, to: panelWidth) {
                    $0.reverse = true
                    $0.bold = true
                    $0.dim = false
                }
            }
        }
    }

    private static func drawWorkerRow(
        _ canvas: inout Canvas, _ world: DashboardWorld, _ row: DashboardModel.WorkerRow,
        columns: WorkerColumns, row screenRow: Int
    ) {
        let worker = world.workers[row.pid]
        let branch: String =
            switch row.branch {
            case .root: ""
            case .middle: canvas.unicode ? "├─" : "|-"
            case .last: canvas.unicode ? "└─" : "`-"
            }
        canvas.put(branch, row: screenRow, column: 1, style: Frame.Style(dim: true))
        let gone = worker?.state == .gone
        for (column, start) in columns.starts {
            var (text, style) = cell(column, world: world, row: row, worker: worker, unicode: canvas.unicode)
            if gone { style.dim = true }
            text =
                column.rightAligned
                ? DashboardFormat.padLeft(text, column.width) : DashboardFormat.fit(text, column.width)
            canvas.put(text, row: screenRow, column: start, style: style, maxWidth: column.width)
        }
    }

    private static func cell(
        _ column: WorkerColumns.Column, world: DashboardWorld, row: DashboardModel.WorkerRow,
        worker: DashboardWorld.Worker?, unicode: Bool
    ) -> (String, Frame.Style) {
        // A gone process's last sample is stale: show none.
        let usage = worker?.state == .gone ? nil : world.usage[row.pid]
        switch column.field {
        case .pid:
            return ("\(row.pid)", row.isMaster ? Frame.Style(bold: true) : .plain)
        case .service:
            if row.isMaster { return ("master", Frame.Style(bold: true)) }
            guard let service = worker?.service else { return ("?", .plain) }
            // A service on a socket shows its port, as in `api :8080`.
            if let address = world.acceptQueues[service]?.address, let colon = address.lastIndex(of: ":") {
                return ("\(service) \(address[colon...])", .plain)
            }
            return (service, .plain)
        case .state:
            if row.isMaster { return masterState(world.phase) }
            switch worker?.state {
            case .starting: return ("start", Frame.Style(color: .yellow))
            case .ready: return ("ready", Frame.Style(color: .green))
            case .stopping: return ("stop", Frame.Style(bold: true, color: .red))
            case .gone: return ("gone", Frame.Style(color: .red))
            case nil: return ("?", .plain)
            }
        case .uptime:
            let since = row.isMaster ? world.startedAt : worker?.forkedAt
            let until = worker?.goneAt ?? world.now
            return (since.map { DashboardFormat.uptime(until - $0, width: column.width) } ?? "-", .plain)
        case .restarts:
            return (
                row.isMaster ? "-" : "\(worker?.restarts ?? 0)",
                (worker?.restarts ?? 0) > 0 ? Frame.Style(color: .yellow) : .plain
            )
        case .cpu:
            return (usage.map { DashboardFormat.cpu($0.sample.cpuPercent) } ?? "-", .plain)
        case .rss:
            return (usage.map { DashboardFormat.bytes($0.sample.rssBytes) } ?? "-", .plain)
        case .last:
            // A gone row shows its own end; a live one how the worker it replaced ended.
            guard let status = worker?.exit ?? worker?.replacedExit else { return ("", .plain) }
            return (DashboardFormat.exitShort(status, width: column.width), exitStyle(status))
        case .threads:
            return (usage.map { "\($0.sample.threads)" } ?? "-", .plain)
        case .procState:
            return (usage?.sample.state ?? "-", .plain)
        case .cpuHistory:
            guard let history = usage?.cpuHistory, !history.isEmpty else { return ("", .plain) }
            let ceiling = max(100, history.max() ?? 0)
            return (
                DashboardFormat.sparkline(history, width: column.width, ceiling: ceiling, unicode: unicode),
                Frame.Style(color: .green)
            )
        }
    }

    private static func masterState(_ phase: DashboardWorld.Phase) -> (String, Frame.Style) {
        switch phase {
        case .running: return ("run", Frame.Style(color: .green))
        case .stopping: return ("stop", Frame.Style(bold: true, color: .red))
        case .escalated: return ("kill", Frame.Style(bold: true, color: .red))
        case .stopped: return ("exit", Frame.Style(color: .red))
        }
    }

    static func exitStyle(_ status: TerminationStatus) -> Frame.Style {
        switch status {
        case .signaled: return Frame.Style(bold: true, color: .red)
        case .exited(let code): return code == 0 ? .plain : Frame.Style(bold: true, color: .yellow)
        }
    }
}
