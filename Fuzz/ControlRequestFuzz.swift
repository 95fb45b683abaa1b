// Control requests as the master reads them (ControlServer): bytes in chunks through a
// LineFramer with ControlRequest.maxLineBytes, each line to ControlRequest.parse.
//
// Input: byte 0 picks the framer's limit (a small one, so the bounds are reached, or the real
// 4096), bytes 1–3 the read sizes, the rest is the stream.
//
// Properties:
// - the framer gives back exactly the lines of the stream: each line within the limit whole and
//   unchanged, each one over it reported once (LineTooLong with its length, or over the limit
//   while unterminated), never a line over the limit;
// - parse never traps; a request it accepts, written back with `line` and parsed again, is the
//   same request; an error is a one-line message.

import ForkwatchCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard input.count >= 4 else { return 0 }
    let limit = input[0] < 128 ? Int(input[0] % 64) + 1 : ControlRequest.maxLineBytes
    let stream = Array(input[4...])

    enum Output: Equatable {
        case line([UInt8])
        case tooLong(Int)
        case overLimit
    }
    var framer = LineFramer(maxLineBytes: limit)
    var outputs: [Output] = []
    for chunk in chunks(stream, sizes: Array(input[1..<4])) {
        framer.append(chunk)
        while let next = framer.next() {
            switch next {
            case .success(let line):
                require(
                    line.utf8.count <= limit * 3, "a line of \(line.utf8.count) UTF-8 bytes past a limit of \(limit)")
                outputs.append(.line(Array(line.utf8)))
            case .failure(let tooLong):
                require(tooLong.length > limit, "LineTooLong of \(tooLong.length) within the limit \(limit)")
                outputs.append(.tooLong(tooLong.length))
            }
        }
        if framer.isOverLimit {
            require(framer.pendingBytes > limit, "over the limit with \(framer.pendingBytes) bytes pending")
            outputs.append(.overLimit)
            framer.skipRestOfLine()
        }
        require(framer.pendingBytes <= limit, "framer holds \(framer.pendingBytes) bytes of a line over \(limit)")
    }

    // The model: every complete line in order; the unterminated rest reported at most once.
    let (lines, rest) = splitLines(stream)
    var index = 0
    for line in lines {
        require(index < outputs.count, "line \(lines.count) of the stream never came out")
        if line.count <= limit {
            require(
                outputs[index] == .line(Array(String(decoding: line, as: UTF8.self).utf8)),
                "line within the limit changed or lost: \(outputs[index])")
        } else {
            require(
                outputs[index] == .tooLong(line.count) || outputs[index] == .overLimit,
                "line of \(line.count) bytes over \(limit) not refused once: \(outputs[index])")
        }
        index += 1
    }
    let left = outputs.count - index
    require(
        left == 0 || (left == 1 && rest.count > limit && outputs[index] == .overLimit),
        "extra output \(outputs[index...])")

    for case .line(let raw) in outputs {
        let line = String(decoding: raw, as: UTF8.self)
        switch ControlRequest.parse(line) {
        case .success(let request):
            let written = request.line
            require(written.hasSuffix("\n") && written.utf8.filter { $0 == 10 }.count == 1, "request line \(written)")
            let again = ControlRequest.parse(String(written.dropLast()))
            require(again == .success(request), "\(request) written as \(written) reads back as \(again)")
        case .failure(let error):
            require(!error.message.isEmpty, "empty error")
            require(!error.line.dropLast().contains("\n"), "error reply of more than one line: \(error.line)")
        }
    }
    return 0
}
