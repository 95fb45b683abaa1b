import ForkwatchCore

/// The small text formats of the dashboard, each fitted to the width of its column.
enum DashboardFormat {
    /// `Int(x)` that cannot trap: NaN is 0 and the rest is held within ±10^15. The decoder
    /// already refuses such numbers in events; this keeps the screen safe from any that slip by.
    static func whole(_ x: Double) -> Int {
        guard !x.isNaN else { return 0 }
        return Int(min(max(x, -1e15), 1e15))
    }

    /// Uptime: `0:04`, `3:12`, `1:03:12`; `1h03m` / `12d03h` when only 6 cells are free.
    static func uptime(_ seconds: Double, width: Int = 7) -> String {
        let total = max(0, whole(seconds))
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        if h == 0 { return "\(m):\(pad2(s))" }
        let full = "\(h):\(pad2(m)):\(pad2(s))"
        if full.count <= width { return full }
        if h < 100 { return "\(h)h\(pad2(m))m" }
        return "\(h / 24)d\(pad2(h % 24))h"
    }

    /// Resident memory in at most 4 cells: `980K`, `1.2M`, `12M`, `120M`, `1.5G`.
    static func bytes(_ count: Int) -> String {
        let kib = Double(count) / 1024
        if kib < 1000 { return "\(whole(kib.rounded()))K" }
        let mib = kib / 1024
        if mib < 9.95 { return JSONObject.number(mib, decimals: 1).droppingSuffix(".0") + "M" }
        if mib < 999.5 { return "\(whole(mib.rounded()))M" }
        let gib = mib / 1024
        return JSONObject.number(gib, decimals: gib < 9.95 ? 1 : 0) + "G"
    }

    /// CPU percent in at most 4 cells: `0.0`, `12.3`, `350`.
    static func cpu(_ percent: Double) -> String {
        percent < 99.95 ? JSONObject.number(max(0, percent), decimals: 1) : "\(whole(percent.rounded()))"
    }

    /// Seconds for the throttle panel: `0.8 s`, `3.2 s`, `4 s`, `12 s`.
    static func seconds(_ value: Double) -> String {
        let v = max(0, value)
        var text = v < 10 ? JSONObject.number(v, decimals: 1) : "\(whole(v.rounded()))"
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text + " s"
    }

    /// The master's uptime in the header, always with hours: `0:03:12`.
    static func hours(_ seconds: Double) -> String {
        let total = max(0, whole(seconds))
        return "\(total / 3600):\(pad2(total / 60 % 60)):\(pad2(total % 60))"
    }

    /// `HH:MM:SS.mmm` of a Unix time, shifted by a fixed UTC offset (the app passes the local
    /// one; tests pass 0, so they do not depend on the machine's time zone).
    static func clock(wall: Double, utcOffset: Int) -> String {
        let millis = Int64(whole(((wall + Double(utcOffset)) * 1000).rounded(.down)))
        let ofDay = ((millis % 86_400_000) + 86_400_000) % 86_400_000
        let ms = ofDay % 1000
        let total = ofDay / 1000
        return "\(pad2(Int(total / 3600))):\(pad2(Int(total / 60 % 60))):\(pad2(Int(total % 60))).\(pad3(Int(ms)))"
    }

    /// How a worker ended, in a few cells: `KILL`, `SEGV core`, `exit 1`.
    static func exitShort(_ status: TerminationStatus, width: Int = 6) -> String {
        switch status {
        case .exited(let code):
            let text = "exit \(code)"
            return text.count <= width ? text : "ex\(code)"
        case .signaled(let signal, let core):
            let name = signal.name.hasPrefix("SIG") ? String(signal.name.dropFirst(3)) : signal.name
            return core && name.count + 5 <= width ? name + " core" : name
        }
    }

    static let unicodeLevels: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let asciiLevels: [Character] = ["_", ".", "-", "=", "#"]

    /// One character per value, scaled to `ceiling` (the largest value when nil); the last
    /// `width` values are kept, so the newest is at the right.
    static func sparkline(_ values: [Double], width: Int, ceiling: Double? = nil, unicode: Bool) -> String {
        guard width > 0 else { return "" }
        let shown = values.suffix(width)
        let levels = unicode ? unicodeLevels : asciiLevels
        let top = max(ceiling ?? shown.max() ?? 0, 1e-9)
        return String(
            shown.map { value -> Character in
                let ratio = min(1, max(0, value / top))
                return levels[min(levels.count - 1, max(0, whole((ratio * Double(levels.count - 1)).rounded(.up))))]
            })
    }

    /// Fits `text` into `width` cells, marking a cut with an ellipsis.
    static func fit(_ text: String, _ width: Int, ellipsis: String = "…") -> String {
        guard width > 0 else { return "" }
        guard text.count > width else { return text }
        if width <= ellipsis.count { return String(text.prefix(width)) }
        return String(text.prefix(width - ellipsis.count)) + ellipsis
    }

    static func padRight(_ text: String, _ width: Int, ellipsis: String = "…") -> String {
        let fitted = fit(text, width, ellipsis: ellipsis)
        return fitted + String(repeating: " ", count: max(0, width - fitted.count))
    }

    static func padLeft(_ text: String, _ width: Int, ellipsis: String = "…") -> String {
        let fitted = fit(text, width, ellipsis: ellipsis)
        return String(repeating: " ", count: max(0, width - fitted.count)) + fitted
    }

    /// Greedy word wrap; a word longer than the line is cut.
    static func wrap(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [] }
        var lines: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = ""
            for word in paragraph.split(separator: " ") {
                var word = String(word)
                while word.count > width {
                    if !line.isEmpty {
                        lines.append(line)
                        line = ""
                    }
                    lines.append(String(word.prefix(width)))
                    word = String(word.dropFirst(width))
                }
                if line.isEmpty {
                    line = word
                } else if line.count + 1 + word.count <= width {
                    line += " " + word
                } else {
                    lines.append(line)
                    line = word
                }
            }
            lines.append(line)
        }
        return lines
    }

    /// For terminals without UTF-8: every character the dashboard (or an event summary) may
    /// carry, spelled in ASCII, so nothing arrives as mojibake.
    static func ascii(_ text: String) -> String {
        guard !text.unicodeScalars.allSatisfy(\.isASCII) else { return text }
        var out = ""
        for character in text {
            if character.isASCII {
                out.append(character)
                continue
            }
            switch character {
            case "→": out += "->"
            case "←": out += "<-"
            case "×": out += "x"
            case "·": out += "|"
            case "…": out += "..."
            case "≥": out += ">="
            case "≤": out += "<="
            case "↑": out += "Up"
            case "↓": out += "Down"
            case "│", "┃": out += "|"
            case "─", "━": out += "-"
            case "├", "┤", "┼", "┌", "┐", "└", "┘", "┬", "┴": out += "+"
            case "▏": out += "_"
            default: out += "?"
            }
        }
        return out
    }

    private static func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    private static func pad3(_ n: Int) -> String { n < 10 ? "00\(n)" : n < 100 ? "0\(n)" : "\(n)" }
}

extension String {
    /// `9.0` → `9`: drops a suffix when present.
    func droppingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
