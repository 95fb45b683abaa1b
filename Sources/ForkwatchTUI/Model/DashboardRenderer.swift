import ForkwatchCore

/// Draws a `DashboardModel` into a `Frame`: pure, so every screen state is testable as text.
/// Layout (design.md, "The dashboard"): a header line; WORKERS over EVENTS on the left;
/// THROTTLE, PERIODIC TASKS and ACCEPT QUEUE on the right; a status line; the keys.
public enum DashboardRenderer {
    /// Colours say the same as the words next to them: red for signals, kills and failures,
    /// yellow for the throttle and crash loops, green for forks and readiness, cyan for titles.
    /// Monochrome stays readable because bold and reverse carry the meaning too.
    public static func render(_ model: DashboardModel, width: Int, height: Int, unicode: Bool = true) -> Frame {
        var canvas = Canvas(width: width, height: height, unicode: unicode)
        let rows = model.workerRows
        let layout = model.layout(width: width, height: height, rowCount: rows.count)
        guard layout.fits else {
            drawTooSmall(&canvas, width: width, height: height)
            return canvas.frame
        }
        drawHeader(&canvas, model, layout)
        drawWorkers(&canvas, model, layout, rows: rows)
        if layout.explainRows > 0 {
            drawExplain(&canvas, model, layout, lines: explainLines(model, panelWidth: layout.leftWidth))
        }
        drawEvents(&canvas, model, layout)
        let rightTitles = drawRightColumn(&canvas, model, layout)
        drawSeparator(&canvas, layout, rightTitleRows: rightTitles)
        drawStatus(&canvas, model, layout)
        drawFooter(&canvas, model, layout)
        switch model.prompt {
        case .help: drawHelp(&canvas, model, layout)
        case .confirmKill(let pid, let service): drawKillConfirm(&canvas, layout, pid: pid, service: service)
        case .confirmQuit: drawQuitPrompt(&canvas, layout)
        case nil: break
        }
        return canvas.frame
    }

    // MARK: - Header

    private struct HeaderPiece {
        let text: String
        var short: String?
        let style: Frame.Style
        /// Lower goes first when the line is too long.
        let priority: Int
    }

    static func drawHeader(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) {
        let world = model.shown
        var pieces: [HeaderPiece] = [HeaderPiece(text: model.title, style: Frame.Style(bold: true), priority: 100)]
        if model.mode == .replay {
            let text =
                model.isPaused
                ? "REPLAY paused" : "REPLAY \(canvas.times)\(DashboardModel.speedText(model.replaySpeed))"
            pieces.append(
                HeaderPiece(text: text, style: Frame.Style(bold: true, reverse: true, color: .magenta), priority: 95))
        } else if model.isPaused {
            pieces.append(
                HeaderPiece(
                    text: "PAUSED (space resumes)", short: "PAUSED",
                    style: Frame.Style(bold: true, reverse: true, color: .yellow), priority: 95))
        }
        if let phase = phaseText(world) {
            pieces.append(
                HeaderPiece(
                    text: phase.long, short: phase.short, style: Frame.Style(bold: true, color: .red), priority: 90))
        }
        if let master = world.masterPid {
            pieces.append(HeaderPiece(text: "master \(master)", style: .plain, priority: 80))
        } else {
            pieces.append(HeaderPiece(text: "waiting for the master", style: Frame.Style(dim: true), priority: 80))
        }
        if let started = world.startedAt {
            pieces.append(
                HeaderPiece(text: "up " + DashboardFormat.hours(world.now - started), style: .plain, priority: 50))
        }
        let alive = world.aliveWorkers
        let wanted = world.wantedWorkers
        pieces.append(
            HeaderPiece(
                text: "\(alive)/\(wanted) workers", style: Frame.Style(color: alive < wanted ? .yellow : .green),
                priority: 70))
        let forks = world.forks(within: recentForkSeconds)
        let noun = forks == 1 ? "fork" : "forks"
        pieces.append(
            HeaderPiece(
                text: "\(forks) \(noun) in last \(Int(recentForkSeconds)) s",
                short: "\(forks) \(noun)/\(Int(recentForkSeconds)) s",
                style: Frame.Style(color: forks > 0 ? .yellow : .normal), priority: 60))
        if model.isFastRefresh { pieces.append(HeaderPiece(text: "fast", style: Frame.Style(dim: true), priority: 10)) }

        let help = "? help"
        let separator = canvas.bullet
        var active = Array(pieces.indices)
        var short = Set<Int>()
        func text(_ index: Int) -> String {
            short.contains(index) ? (pieces[index].short ?? pieces[index].text) : pieces[index].text
        }
        func length() -> Int { active.reduce(1) { $0 + text($1).count } + max(0, active.count - 1) * separator.count }
        let fitsWithHelp = length() + help.count + 3 <= layout.width
        if !fitsWithHelp {
            // Shorten the ordinary pieces, drop the least useful, and only then shorten (or
            // drop) the alarms: STOPPING, PAUSED, REPLAY.
            let limit = layout.width - 1
            let byPriority = pieces.indices.sorted { pieces[$0].priority < pieces[$1].priority }
            for index in byPriority where pieces[index].priority < 85 && length() > limit { short.insert(index) }
            for index in byPriority where pieces[index].priority < 60 && length() > limit {
                active.removeAll { $0 == index }
            }
            for index in byPriority where length() > limit { short.insert(index) }
            for index in byPriority where pieces[index].priority < 100 && length() > limit {
                active.removeAll { $0 == index }
            }
        }
        var column = 1
        for (position, index) in active.enumerated() {
            if position > 0 { column = canvas.put(separator, row: 0, column: column, style: Frame.Style(dim: true)) }
            column = canvas.put(
                text(index), row: 0, column: column, style: pieces[index].style, maxWidth: max(0, layout.width - column)
            )
        }
        if fitsWithHelp {
            canvas.put(help, row: 0, column: layout.width - help.count - 1, style: Frame.Style(bold: true))
        }
    }

    /// The window of the header's "N forks in last 4 s".
    static let recentForkSeconds = 4.0

    private static func phaseText(_ world: DashboardWorld) -> (long: String, short: String)? {
        switch world.phase {
        case .running:
            return nil
        case .stopping(let mode, let killAt):
            let name = mode.map { "STOPPING (\($0.rawValue))" } ?? "STOPPING"
            guard let killAt else { return (name, name) }
            return (name + " · SIGKILL in " + DashboardFormat.seconds(killAt - world.now), name)
        case .escalated(let survivors):
            return ("ESCALATED: SIGKILL to \(survivors) workers", "ESCALATED: SIGKILL")
        case .stopped(let code):
            let text = "STOPPED" + (code.map { " (exit \($0))" } ?? "")
            return (text, text)
        }
    }

    // MARK: - Frame furniture

    static func drawSeparator(_ canvas: inout Canvas, _ layout: DashboardLayout, rightTitleRows: Set<Int>) {
        for row in layout.bodyRows {
            let leftTitle =
                [layout.workersTitleRow, layout.eventsTitleRow].contains(row)
                || (layout.explainRows > 0 && row == layout.explainTitleRow)
            let rightTitle = rightTitleRows.contains(row)
            let glyph: String =
                switch (leftTitle, rightTitle) {
                case (true, true): canvas.unicode ? "┼" : "+"
                case (true, false): canvas.unicode ? "┤" : "+"
                case (false, true): canvas.unicode ? "├" : "+"
                case (false, false): canvas.vertical
                }
            canvas.put(glyph, row: row, column: layout.separatorColumn, style: Frame.Style(dim: true))
        }
    }

    static func drawStatus(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) {
        let row = layout.statusRow
        if model.editingFilter {
            var column = canvas.put(" / ", row: row, column: 0, style: Frame.Style(bold: true, color: .yellow))
            column = canvas.put(model.filter, row: row, column: column, style: Frame.Style(bold: true))
            column = canvas.put(canvas.unicode ? "▏" : "_", row: row, column: column, style: Frame.Style(bold: true))
            canvas.put(
                "   filter events and workers · Enter keeps it · Esc clears", row: row, column: column,
                style: Frame.Style(dim: true))
            return
        }
        var column = 0
        if let message = model.currentMessage {
            column =
                canvas.put(" " + message, row: row, column: 0, style: Frame.Style(bold: true), maxWidth: layout.width)
                + 2
        } else if model.filter.isEmpty {
            let hint =
                model.explainOpen
                ? " [ ] other events · e closes the explanation · selected worker: \(model.selectedPid.map(String.init) ?? "none")"
                : " Tab or ←→ switch panel · [ ] pick an event · e explains it"
            canvas.put(hint, row: row, column: 0, style: Frame.Style(dim: true), maxWidth: layout.width)
            return
        }
        if !model.filter.isEmpty {
            // After the message when both fit, else it waits for the message to expire.
            let text = "filter \"\(model.filter)\" (/ edits, Esc clears)"
            if column + text.count < layout.width {
                canvas.put(
                    text, row: row, column: max(column, layout.width - text.count - 1),
                    style: Frame.Style(bold: true, color: .yellow))
            }
        }
    }

    typealias FooterKey = (key: String, label: String)

    /// Every key with a one-word label (`KeyBinding.all`): on one row when it fits, else on two (at 80 columns),
    /// so that no key is ever left out and no label needs abbreviating.
    static func footerLines(_ mode: DashboardModel.Mode, width: Int) -> [[FooterKey]] {
        let lines = KeyBinding.footer(mode)
        let actions: [FooterKey] = lines.actions.map { ($0.key, $0.label) }
        let views: [FooterKey] = lines.views.map { ($0.key, $0.label) }
        func length(_ keys: [FooterKey]) -> Int {
            1 + keys.reduce(0) { $0 + $1.key.count + 1 + $1.label.count } + max(0, keys.count - 1) * 2
        }
        if length(actions + views) <= width { return [actions + views] }
        return [actions, views]
    }

    static func drawFooter(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) {
        for (offset, line) in footerLines(model.mode, width: layout.width).enumerated() {
            let row = layout.footerRow + offset
            var column = 1
            for (index, entry) in line.enumerated() {
                if index > 0 { column = canvas.put("  ", row: row, column: column) }
                // Reverse video marks the key, so the row reads as key/label pairs without colour.
                column = canvas.put(entry.key, row: row, column: column, style: Frame.Style(bold: true, reverse: true))
                column = canvas.put(" " + entry.label, row: row, column: column)
            }
        }
    }

    static func drawTooSmall(_ canvas: inout Canvas, width: Int, height: Int) {
        let x = canvas.times
        let text =
            "terminal too small: need \(DashboardLayout.minimumWidth)\(x)\(DashboardLayout.minimumHeight), have \(width)\(x)\(height)"
        // One line when it fits, else broken after the colon (and wrapped if still too long).
        let lines =
            text.count <= width
            ? [text]
            : DashboardFormat.wrap("terminal too small:", width: max(1, width))
                + DashboardFormat.wrap(String(text.dropFirst("terminal too small: ".count)), width: max(1, width))
        for (index, line) in lines.enumerated() {
            let row = max(0, (height - lines.count) / 2) + index
            let column = max(0, (width - line.count) / 2)
            canvas.put(line, row: row, column: column, style: Frame.Style(bold: true))
        }
    }
}
