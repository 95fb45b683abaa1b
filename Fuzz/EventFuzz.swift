// Event lines as replay reads them: an events file in chunks through EventFileReader, each line
// to EventCodec.decode.
//
// Input: byte 0 picks the reader's line limit (small, so the long-line path runs), bytes 1–3 the
// read sizes, the rest is the file.
//
// Properties:
// - the reader numbers lines as the file does (1-based, blank lines counted, increasing), and its
//   event for a line is what EventCodec.decode makes of that line; a line over the limit is a
//   problem, never decoded;
// - decode never traps; an event it returns, encoded, decodes again (the encoder's output is
//   always readable), and encoding that gives the same line (encode ∘ decode is a fixpoint).

import ForkwatchCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard input.count >= 4 else { return 0 }
    let limit = input[0] < 128 ? Int(input[0]) + 16 : EventFileReader.defaultMaxLineBytes
    let file = Array(input[4...])
    let (lines, rest) = splitLines(file)
    let allLines = rest.isEmpty ? lines : lines + [rest]

    var reader = EventFileReader(maxLineBytes: limit)
    var items: [EventFileReader.Item] = []
    for chunk in chunks(file, sizes: Array(input[1..<4])) {
        reader.append(chunk)
        while let item = reader.next() { items.append(item) }
    }
    reader.finish()
    while let item = reader.next() { items.append(item) }

    var previous = 0
    for item in items {
        let number: Int
        switch item {
        case .event(let event, let line):
            number = line
            require(line >= 1 && line <= allLines.count, "event on line \(line) of \(allLines.count)")
            let text = allLines[line - 1]
            require(text.count <= limit, "a line of \(text.count) bytes over \(limit) was decoded")
            let direct = try? EventCodec.decode(String(decoding: text, as: UTF8.self))
            require(direct == event, "reader's event on line \(line) differs from decode")
        case .problem(let problem):
            number = problem.line
            require(
                problem.line >= 1 && problem.line <= allLines.count,
                "problem on line \(problem.line) of \(allLines.count)")
            require(!problem.message.isEmpty, "empty problem")
        }
        require(number > previous, "line \(number) after line \(previous)")
        previous = number
    }

    for line in allLines where line.count <= 65_536 {
        let text = String(decoding: line, as: UTF8.self)
        guard let event = try? EventCodec.decode(text) else { continue }
        let encoded = EventCodec.encode(event)
        require(!encoded.contains("\n"), "an encoded event holds a newline: \(encoded)")
        let again: Event
        do { again = try EventCodec.decode(encoded) } catch {
            fatalError("property violated: \(text) decoded, encoded as \(encoded), does not decode: \(error)")
        }
        let twice = EventCodec.encode(again)
        require(twice == encoded, "encode is not a fixpoint:\n\(encoded)\n\(twice)")
    }
    return 0
}
