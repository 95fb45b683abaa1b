// Compiled into every fuzz target (bench/fuzz.sh): the property check and the input helpers.

/// A property that must hold: a failure ends the run with the message, and libFuzzer keeps the input.
func require(_ holds: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !holds() { fatalError("property violated: \(message())") }
}

/// The fuzzer's bytes, copied out of its buffer.
func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Cuts `bytes` into chunks whose sizes come from `sizes` (cycled): the same stream, arriving in
/// reads of any shape, as `read(2)` may give it.
func chunks(_ bytes: [UInt8], sizes: [UInt8]) -> [[UInt8]] {
    var result: [[UInt8]] = []
    var start = 0
    var turn = 0
    while start < bytes.count {
        let size = sizes.isEmpty ? bytes.count : Int(sizes[turn % sizes.count]) + 1
        let end = min(bytes.count, start + size)
        result.append(Array(bytes[start..<end]))
        start = end
        turn += 1
    }
    return result
}

/// The complete lines of `bytes` (without their newline) and the unterminated rest.
func splitLines(_ bytes: [UInt8]) -> (lines: [[UInt8]], rest: [UInt8]) {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for byte in bytes {
        if byte == UInt8(ascii: "\n") {
            lines.append(current)
            current = []
        } else {
            current.append(byte)
        }
    }
    return (lines, current)
}
