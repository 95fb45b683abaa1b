// Worker status lines as the master reads them: a line (no newline) to ChildMessage.parse.
//
// Properties:
// - parse never traps; an error names the line's problem;
// - a message it accepts is written by `line` as one line of at most maxLineBytes + 1 bytes
//   (what the master accepts back), which parses again, and writing that gives the same line.

import ForkwatchCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChildMessage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    for raw in splitLines(input).lines + [splitLines(input).rest] {
        let line = String(decoding: raw, as: UTF8.self)
        switch ChildMessage.parse(line) {
        case .success(let message):
            let written = message.line
            require(written.hasSuffix("\n"), "no newline: \(written)")
            let body = String(written.dropLast())
            require(!body.utf8.contains(UInt8(ascii: "\n")), "a message of more than one line: \(written)")
            require(
                written.utf8.count <= ChildMessage.maxLineBytes + 1,
                "\(message) written as a line of \(written.utf8.count) bytes")
            let again: ChildMessage
            switch ChildMessage.parse(body) {
            case .success(let value): again = value
            case .failure(let error):
                fatalError("property violated: \(message) written as \(body) reads back as \(error)")
            }
            require(again.line == written, "line is not a fixpoint:\n\(written)\(again.line)")
            if case .execFailed = message { require(again == message, "\(message) reads back as \(again)") }
            if case .ready = message { require(again == message, "\(message) reads back as \(again)") }
        case .failure(let error):
            require(!error.problem.isEmpty, "an error without a problem")
            require(error.line == line, "the error names another line")
        }
    }
    return 0
}
