import ForkwatchCore
import Testing

@Suite struct LineFramerTests {
    private func lines(_ framer: inout LineFramer) -> [String] {
        var out: [String] = []
        while let next = framer.next() { out.append((try? next.get()) ?? "<too long>") }
        return out
    }

    /// However the bytes are cut into reads, the same lines come out, and a partial line waits.
    @Test(arguments: [1, 2, 3, 7, 100])
    func linesComeOutWhateverTheReadSize(chunk: Int) {
        let text = Array("ready\nbeat {\"ok\":true}\n\nnotice a b\npartial".utf8)
        var framer = LineFramer()
        var out: [String] = []
        var index = 0
        while index < text.count {
            framer.append(Array(text[index..<min(index + chunk, text.count)]))
            out += lines(&framer)
            index += chunk
        }
        #expect(out == ["ready", "beat {\"ok\":true}", "", "notice a b"])
        #expect(framer.pendingBytes == "partial".utf8.count)
        framer.append(Array("\n".utf8))
        #expect(lines(&framer) == ["partial"])
        #expect(framer.pendingBytes == 0)
    }

    @Test func aLineOverTheLimitIsRefusedAndTheNextStillComes() {
        var framer = LineFramer(maxLineBytes: 4)
        framer.append(Array("abcd\nabcde\nok\nabcdefgh".utf8))
        #expect(framer.next() == .success("abcd"))
        guard case .failure(let tooLong) = framer.next() else {
            Issue.record("abcde was handed out")
            return
        }
        #expect(tooLong.length == 5)
        #expect(framer.next() == .success("ok"))
        #expect(framer.next() == nil)
        #expect(framer.isOverLimit)
        framer.reset()
        #expect(framer.pendingBytes == 0 && !framer.isOverLimit)
    }

    /// Many small lines through a framer that keeps compacting: nothing lost or repeated.
    @Test func compactionKeepsEveryLine() {
        var framer = LineFramer()
        var out: [String] = []
        for batch in 0..<50 {
            framer.append(Array((0..<1000).map { "\(batch)-\($0)\n" }.joined().utf8) + Array("tail".utf8))
            out += lines(&framer)
            framer.append(Array("-\(batch)\n".utf8))
            out += lines(&framer)
        }
        #expect(out.count == 50 * 1001)
        #expect(out[1000] == "tail-0" && out.last == "tail-49" && out[1001] == "1-0")
    }

    /// A line too long to keep is dropped to its end, however many reads it takes: its tail
    /// never comes back as a line of its own.
    @Test func theRestOfARefusedLineIsSkippedToItsNewline() {
        var framer = LineFramer(maxLineBytes: 4)
        framer.append(Array("abcdefgh".utf8))
        #expect(framer.next() == nil && framer.isOverLimit)
        framer.skipRestOfLine()
        framer.append(Array("ijkl".utf8))
        #expect(framer.next() == nil && !framer.isOverLimit)
        framer.append(Array("mn\nok\n".utf8))
        #expect(framer.next() == .success("ok"))
        #expect(framer.next() == nil && framer.pendingBytes == 0)
    }
}
