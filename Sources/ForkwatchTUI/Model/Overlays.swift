import ForkwatchCore

/// The boxes drawn over the dashboard: help, the SIGKILL confirmation, the quit question.
extension DashboardRenderer {
    static func drawHelp(_ canvas: inout Canvas, _ model: DashboardModel, _ layout: DashboardLayout) {
        let entries = KeyBinding.helpEntries(model.mode)
        let keyWidth = entries.map(\.keys.count).max() ?? 0
        // Border, a space, the keys, two spaces, the meaning, a space, border.
        let width = min(layout.width - 2, keyWidth + 7 + (entries.map(\.meaning.count).max() ?? 0))
        let height = min(layout.height - 2, entries.count + 2)
        let top = max(0, (layout.height - height) / 2)
        let left = max(0, (layout.width - width) / 2)
        canvas.box(
            top: top, left: left, height: height, width: width, title: "KEYS · any key closes",
            style: Frame.Style(bold: true, color: .cyan))
        for (index, entry) in entries.prefix(height - 2).enumerated() {
            let row = top + 1 + index
            let column = canvas.put(
                " " + DashboardFormat.padRight(entry.keys, keyWidth), row: row, column: left + 1,
                style: Frame.Style(bold: true))
            canvas.put("  " + entry.meaning, row: row, column: column, maxWidth: left + width - 1 - column)
        }
    }

    static func drawKillConfirm(_ canvas: inout Canvas, _ layout: DashboardLayout, pid: Int32, service: String) {
        let lines: [Line] = [
            ("Send SIGKILL to \(pid) \(service)? y/N", Frame.Style(bold: true, color: .red)),
            ("SIGKILL cannot be caught: the kernel ends it at once.", .plain),
            ("y sends it; any other key cancels.", Frame.Style(dim: true)),
        ]
        drawPromptBox(&canvas, layout, title: "SIGKILL", lines: lines, style: Frame.Style(bold: true, color: .red))
    }

    static func drawQuitPrompt(_ canvas: inout Canvas, _ layout: DashboardLayout) {
        let lines: [Line] = [
            ("Quit the dashboard.", Frame.Style(bold: true)),
            ("Stop the services (s) / leave them running (l) / cancel (any other key)", .plain),
            ("Left running, they can be watched again with: forkwatch top", Frame.Style(dim: true)),
        ]
        drawPromptBox(&canvas, layout, title: "QUIT", lines: lines, style: Frame.Style(bold: true, color: .yellow))
    }

    /// A centred box sized to its lines (wrapped when the terminal is narrow).
    private static func drawPromptBox(
        _ canvas: inout Canvas, _ layout: DashboardLayout, title: String, lines: [Line], style: Frame.Style
    ) {
        let inner = min(layout.width - 6, lines.map(\.text.count).max() ?? 0)
        let wrapped: [Line] = lines.flatMap { line in
            DashboardFormat.wrap(line.text, width: inner).map { ($0, line.style) }
        }
        let width = inner + 4
        let height = wrapped.count + 2
        let top = max(0, (layout.height - height) / 2)
        let left = max(0, (layout.width - width) / 2)
        canvas.box(top: top, left: left, height: height, width: width, title: title, style: style)
        for (index, line) in wrapped.enumerated() {
            canvas.put(line.text, row: top + 1 + index, column: left + 2, style: line.style, maxWidth: inner)
        }
    }
}
