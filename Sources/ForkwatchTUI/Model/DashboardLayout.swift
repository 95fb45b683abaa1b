/// Where each panel goes for a terminal size. Shared by the renderer and the model (which needs
/// the page size for PgUp/PgDn and the scroll position of the worker list).
struct DashboardLayout: Sendable, Equatable {
    static let minimumWidth = 80
    static let minimumHeight = 24

    let width: Int
    let height: Int
    /// The right column (throttle, periodic tasks, accept queue), after the separator.
    let rightWidth: Int
    let leftWidth: Int
    var separatorColumn: Int { leftWidth }
    var rightColumn: Int { leftWidth + 1 }

    let headerRow = 0
    /// The keys: one row when they fit, two on narrow terminals.
    let footerRows: Int
    var statusRow: Int { height - 1 - footerRows }
    var footerRow: Int { height - footerRows }
    /// Panels use rows 1 ..< statusRow.
    var bodyRows: Range<Int> { 1..<statusRow }

    let workersTitleRow = 1
    let workersHeaderRow = 2
    let firstWorkerRow = 3
    /// Worker rows that fit (the list scrolls beyond).
    let workerRows: Int
    /// The explain pane (title + text) between WORKERS and EVENTS; 0 when closed.
    let explainRows: Int
    var explainTitleRow: Int { firstWorkerRow + workerRows }
    var eventsTitleRow: Int { explainTitleRow + explainRows }
    var firstEventRow: Int { eventsTitleRow + 1 }
    var eventRows: Int { max(0, statusRow - firstEventRow) }

    var fits: Bool { width >= Self.minimumWidth && height >= Self.minimumHeight }

    init(width: Int, height: Int, workerRowCount: Int, explainLines: Int = 0, footerRows: Int = 1) {
        self.width = width
        self.height = height
        self.footerRows = footerRows
        // The right column grows a little with the terminal; the left one takes the rest.
        rightWidth = min(48, max(25, width * 3 / 10))
        leftWidth = max(0, width - rightWidth - 1)
        let body = max(0, height - 2 - footerRows)
        // The explain pane takes up to half the body; the workers and events panels share the rest.
        explainRows = explainLines > 0 ? min(explainLines + 1, body / 2) : 0
        // Minus the two panel titles and the column header.
        let dataRows = max(2, body - explainRows - 3)
        let workerCap = max(3, dataRows * 6 / 10)
        workerRows = max(1, min(workerRowCount, workerCap))
    }

    /// The first visible worker row so that `selected` is on screen, moving as little as
    /// possible from `previousTop`.
    func workerScrollTop(selected: Int?, previousTop: Int, rowCount: Int) -> Int {
        var top = min(max(0, previousTop), max(0, rowCount - workerRows))
        if let selected {
            if selected < top { top = selected }
            if selected >= top + workerRows { top = selected - workerRows + 1 }
        }
        return max(0, top)
    }
}

/// The WORKERS table's columns for a panel width: the 80-column set, widened and extended
/// (threads, /proc state, a CPU sparkline) when there is room.
struct WorkerColumns: Sendable, Equatable {
    enum Field: Sendable, Equatable {
        case pid, service, state, uptime, restarts, cpu, rss, last, threads, procState, cpuHistory
    }

    struct Column: Sendable, Equatable {
        let field: Field
        let title: String
        var width: Int
        let rightAligned: Bool
    }

    /// Selection marker and tree branch before the PID.
    static let prefixWidth = 3

    private(set) var columns: [Column]

    func width(of field: Field) -> Int? { columns.first { $0.field == field }?.width }

    /// Start column of each field (relative to the panel), in order.
    var starts: [(Column, Int)] {
        var column = Self.prefixWidth
        return columns.map { item in
            defer { column += item.width + 1 }
            return (item, column)
        }
    }

    init(panelWidth: Int) {
        columns = [
            Column(field: .pid, title: "PID", width: 7, rightAligned: false),
            Column(field: .service, title: "SERVICE", width: 9, rightAligned: false),
            Column(field: .state, title: "STATE", width: 5, rightAligned: false),
            Column(field: .uptime, title: "UP", width: 6, rightAligned: true),
            Column(field: .restarts, title: "RST", width: 3, rightAligned: true),
            Column(field: .cpu, title: "CPU%", width: 4, rightAligned: true),
            Column(field: .rss, title: "RSS", width: 4, rightAligned: true),
            Column(field: .last, title: "LAST", width: 6, rightAligned: false),
        ]
        var spare = panelWidth - Self.prefixWidth - columns.reduce(0) { $0 + $1.width + 1 } + 1
        // Wider columns first (readability), then extra columns (more information).
        for (field, extra) in [(Field.service, 7), (.uptime, 1), (.state, 2), (.cpu, 1), (.rss, 1), (.last, 6)]
        where spare > 0 {
            let grow = min(spare, extra)
            if let index = columns.firstIndex(where: { $0.field == field }) { columns[index].width += grow }
            spare -= grow
        }
        if spare >= 4 {
            columns.append(Column(field: .threads, title: "THR", width: 3, rightAligned: true))
            spare -= 4
        }
        if spare >= 2 {
            columns.append(Column(field: .procState, title: "S", width: 1, rightAligned: false))
            spare -= 2
        }
        if spare >= 9 {
            columns.append(
                Column(field: .cpuHistory, title: "CPU HISTORY", width: min(30, spare - 1), rightAligned: false))
        }
    }
}
