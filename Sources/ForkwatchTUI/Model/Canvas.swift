/// A `Frame` being drawn, with the dashboard's glyphs: UTF-8 box drawing, or ASCII for a
/// terminal without UTF-8 (every string is folded to ASCII on the way in).
struct Canvas {
    var frame: Frame
    let unicode: Bool

    init(width: Int, height: Int, unicode: Bool) {
        frame = Frame(width: width, height: height)
        self.unicode = unicode
    }

    var vertical: String { unicode ? "│" : "|" }
    var horizontal: String { unicode ? "─" : "-" }
    var bullet: String { unicode ? " · " : " | " }
    var arrow: String { unicode ? "→" : "->" }
    var times: String { unicode ? "×" : "x" }

    /// Writes text clipped to `maxWidth` cells (and to the frame); returns the next column.
    @discardableResult
    mutating func put(_ text: String, row: Int, column: Int, style: Frame.Style = .plain, maxWidth: Int? = nil) -> Int {
        frame.put(
            unicode ? text : DashboardFormat.ascii(text), row: row, column: column, style: style, maxWidth: maxWidth)
    }

    /// Blanks a rectangle (under an overlay).
    mutating func clear(rows: Range<Int>, columns: Range<Int>, style: Frame.Style = .plain) {
        for row in rows where row >= 0 && row < frame.height {
            for column in columns where column >= 0 && column < frame.width {
                frame[row, column] = Frame.Cell(" ", style)
            }
        }
    }

    /// A panel title: the name (reversed when the panel has the keyboard focus), then a thin
    /// rule up to `end`.
    mutating func title(
        _ text: String, row: Int, from column: Int, to end: Int, extra: String = "",
        extraStyle: Frame.Style = Frame.Style(dim: true), focused: Bool = false
    ) {
        var col = put(
            " " + text + " ", row: row, column: column, style: Frame.Style(bold: true, reverse: focused, color: .cyan),
            maxWidth: end - column)
        if !extra.isEmpty { col = put(extra + " ", row: row, column: col, style: extraStyle, maxWidth: end - col) }
        if col < end {
            put(String(repeating: horizontal, count: end - col), row: row, column: col, style: Frame.Style(dim: true))
        }
    }

    /// A bordered box with a title in its top edge; the inside is blanked.
    mutating func box(top: Int, left: Int, height: Int, width: Int, title: String, style: Frame.Style) {
        guard height >= 2, width >= 2 else { return }
        let (tl, tr, bl, br) = unicode ? ("┌", "┐", "└", "┘") : ("+", "+", "+", "+")
        clear(rows: top..<(top + height), columns: left..<(left + width))
        let rule = String(repeating: horizontal, count: width - 2)
        put(tl + rule + tr, row: top, column: left, style: style)
        put(bl + rule + br, row: top + height - 1, column: left, style: style)
        for row in (top + 1)..<(top + height - 1) {
            put(vertical, row: row, column: left, style: style)
            put(vertical, row: row, column: left + width - 1, style: style)
        }
        if !title.isEmpty {
            put(
                " " + title + " ", row: top, column: left + 2,
                style: Frame.Style(bold: true, reverse: style.reverse, color: style.color), maxWidth: width - 4)
        }
    }
}
