import ForkwatchCore

/// The EVENTS panel (the log, newest at the bottom, with a cursor) and the explain pane above it.
extension DashboardRenderer {
    static func drawEvents(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) {
        let entries = model.visibleEvents
        let panelWidth = layout.leftWidth
        let cursor = model.eventCursorIndex(in: entries)
        let rows = layout.eventRows
        // Following: the newest fill the panel. On an older event: the window starts at it.
        let start =
            model.eventCursor == nil || cursor == nil
            ? max(0, entries.count - rows)
            : max(0, min(cursor!, entries.count - rows))

        var extra = model.eventCursor == nil ? "" : "\(cursor.map { $0 + 1 } ?? 0) of \(entries.count)"
        if !model.filter.isEmpty {
            extra += (extra.isEmpty ? "" : ", ") + "\(entries.count) of \(model.shown.log.count) match"
        }
        canvas.title(
            "EVENTS", row: layout.eventsTitleRow, from: 0, to: panelWidth, extra: extra, focused: model.focus == .events
        )

        if entries.isEmpty {
            let text = model.filter.isEmpty ? "no events yet" : "no event matches \"\(model.filter)\""
            canvas.put(
                "  " + text, row: layout.firstEventRow, column: 0, style: Frame.Style(dim: true), maxWidth: panelWidth)
            return
        }
        // The cursor is drawn once someone uses it (or an explanation is about it).
        let showCursor = model.focus == .events || model.eventCursor != nil || model.explainOpen
        for offset in 0..<rows {
            let index = start + offset
            guard index < entries.count else { break }
            let row = layout.firstEventRow + offset
            let entry = entries[index]
            let column = canvas.put(
                DashboardFormat.clock(wall: entry.event.wall, utcOffset: model.utcOffset) + " ",
                row: row, column: 1, style: Frame.Style(dim: true))
            let room = panelWidth - column - 1  // one blank before the separator
            canvas.put(
                DashboardFormat.fit(entry.summary, room), row: row, column: column, style: eventStyle(entry.event),
                maxWidth: room)
            if showCursor && index == cursor {
                canvas.put(">", row: row, column: 0, style: Frame.Style(bold: true))
                let focused = model.focus == .events
                canvas.frame.restyle(row: row, from: 0, to: panelWidth) {
                    $0.bold = true
                    $0.dim = false
                    if focused { $0.reverse = true } else { $0.underline = true }
                }
            }
        }
    }

    /// The explain pane's text for the event under the cursor, wrapped to the left panel.
    static func explainLines(_ model: DashboardModel, panelWidth: Int) -> [(text: String, bold: Bool)] {
        let width = max(10, panelWidth - 3)
        guard let entry = model.explainedEvent else {
            return [("No event to explain yet.", false)]
        }
        let explanation = entry.event.explanation
        return DashboardFormat.wrap(entry.summary, width: width).map { ($0, true) }
            + DashboardFormat.wrap(
                explanation.isEmpty ? "Nothing more to say about this one." : explanation, width: width
            ).map { ($0, false) }
    }

    static func drawExplain(
        _ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout, lines: [(text: String, bold: Bool)]
    ) {
        let panelWidth = layout.leftWidth
        var extra = "e closes"
        if let entry = model.explainedEvent {
            extra =
                DashboardFormat.clock(wall: entry.event.wall, utcOffset: model.utcOffset) + " " + entry.event.type
                + " · e closes"
        }
        canvas.title("EXPLAIN", row: layout.explainTitleRow, from: 0, to: panelWidth, extra: extra)
        let room = layout.explainRows - 1
        for (offset, line) in lines.prefix(room).enumerated() {
            // The last row says when the text goes on beyond the pane.
            let cut = offset == room - 1 && lines.count > room
            let text = cut ? DashboardFormat.fit(line.text + " …", panelWidth - 3) : line.text
            canvas.put(
                text, row: layout.explainTitleRow + 1 + offset, column: 2,
                style: Frame.Style(
                    bold: line.bold, color: line.bold ? eventStyle(model.explainedEvent!.event).color : .normal),
                maxWidth: panelWidth - 3)
        }
    }

    /// Red for signals, kills and failures; yellow for the throttle, crash loops and notices;
    /// green for forks and readiness. Bold marks what a person did (`you → …`).
    static func eventStyle(_ event: Event) -> Frame.Style {
        switch event.kind {
        case .signalSent(_, _, _, _, let origin, let error):
            return Frame.Style(bold: origin == "you" || error != nil, color: .red)
        case .signalReceived, .escalate, .execFailed, .forkFailed, .forkRefused, .configError, .stopping, .stopped:
            return Frame.Style(color: .red)
        case .exit(_, _, let status, _, _, let expected):
            if case .signaled = status { return Frame.Style(bold: !expected, color: .red) }
            if status == .exited(code: 0) { return .plain }
            return Frame.Style(bold: !expected, color: .red)
        case .throttle, .notice, .subscriberDropped:
            return Frame.Style(color: .yellow)
        case .serviceRemoved:
            return .plain
        case .listening, .acceptQueue, .rpcStats:
            return .plain
        case .taskRun(_, _, _, _, _, let ok, _, _, _), .heartbeat(_, _, let ok, _, _):
            return ok ? .plain : Frame.Style(color: .yellow)
        case .serviceState(_, let state, _):
            switch state {
            case .crashLooping: return Frame.Style(bold: true, color: .yellow)
            case .failed: return Frame.Style(bold: true, color: .red)
            case .running: return Frame.Style(color: .green)
            }
        case .fork, .ready, .rollingDone, .masterStarted:
            return Frame.Style(color: .green)
        case .logReopened(_, let error):
            return error == nil ? .plain : Frame.Style(color: .red)
        case .scale, .reload, .rollingStep, .stats, .snapshot:
            return .plain
        }
    }
}
