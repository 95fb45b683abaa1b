import ForkwatchCore

/// What the dashboard draws: a grid of characters with styles. The renderer fills it from the
/// model (pure, testable as text); the ncurses screen only copies it to the terminal.
public struct Frame: Sendable, Equatable {
    public enum Color: Int, Sendable, Equatable, CaseIterable {
        case normal = 0
        case red, green, yellow, blue, magenta, cyan
    }

    public struct Style: Sendable, Equatable {
        public var bold = false
        public var dim = false
        public var reverse = false
        public var underline = false
        public var color: Color = .normal

        public init(
            bold: Bool = false, dim: Bool = false, reverse: Bool = false, underline: Bool = false,
            color: Color = .normal
        ) {
            self.bold = bold
            self.dim = dim
            self.reverse = reverse
            self.underline = underline
            self.color = color
        }

        public static let plain = Style()
    }

    public struct Cell: Sendable, Equatable {
        public var character: Character
        public var style: Style
        public init(_ character: Character, _ style: Style = .plain) {
            self.character = character
            self.style = style
        }
    }

    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: Cell(" "), count: self.width * self.height)
    }

    public subscript(row: Int, column: Int) -> Cell {
        get { cells[row * width + column] }
        set { cells[row * width + column] = newValue }
    }

    /// Writes `text` from (row, column), clipped to the frame; returns the column after it.
    /// Every Character takes one cell (the dashboard uses no double-width characters).
    @discardableResult
    public mutating func put(_ text: String, row: Int, column: Int, style: Style = .plain, maxWidth: Int? = nil) -> Int
    {
        guard row >= 0, row < height else { return column }
        var col = column
        let limit = min(width, maxWidth.map { column + $0 } ?? width)
        for character in text {
            if col >= limit { break }
            if col >= 0 { self[row, col] = Cell(character, style) }
            col += 1
        }
        return col
    }

    /// Applies `style` to cells of a row (a selection bar), keeping their characters.
    public mutating func restyle(row: Int, from: Int = 0, to: Int? = nil, _ change: (inout Style) -> Void) {
        guard row >= 0, row < height else { return }
        for col in max(0, from)..<min(width, to ?? width) { change(&self[row, col].style) }
    }

    /// One row as plain text, trailing spaces kept (tests trim as they need).
    public func text(row: Int) -> String {
        String(cells[(row * width)..<((row + 1) * width)].map(\.character))
    }

    /// The whole frame as plain text, one line per row, trailing spaces trimmed.
    public var text: String {
        (0..<height).map { row in
            var line = text(row: row)
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }
}

/// A key the dashboard understands, decoded from the terminal by the screen.
public enum DashboardKey: Sendable, Equatable {
    case up, down, pageUp, pageDown, home, end, left, right
    case enter, escape, backspace
    case character(Character)
}

/// What a key asks the outside world to do; the app loop performs it (over the control socket,
/// or on the replay clock).
public enum DashboardCommand: Sendable, Equatable {
    case signal(pid: Int32, signal: Signal)
    case scale(service: String, workers: Int)
    case reload
    case stop(mode: StopMode)
    /// Leave the dashboard; `stopServices` asks the master to stop first.
    case quit(stopServices: Bool)
    /// Refresh every 100 ms (true) or every second.
    case setFastRefresh(Bool)
    /// Replay only: advance by one event / change speed.
    case replayStep
    case replaySpeed(Double)
}
