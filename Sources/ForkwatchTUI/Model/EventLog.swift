import ForkwatchCore

/// The EVENTS panel's memory: the last `capacity` events, each with a sequence number so a
/// cursor can point at one event however many arrive after it.
struct EventLog: Sendable {
    struct Entry: Sendable {
        let sequence: Int
        let event: Event
        let summary: String
        /// For the case-insensitive filter, computed once.
        let folded: String
    }

    let capacity: Int
    private var storage: [Entry] = []
    /// Index in `storage` of the oldest entry once the ring is full.
    private var head = 0
    private(set) var nextSequence = 0

    init(capacity: Int = 2000) {
        self.capacity = max(1, capacity)
        storage.reserveCapacity(self.capacity)
    }

    var count: Int { storage.count }

    mutating func append(_ event: Event) {
        let summary = event.summary
        let entry = Entry(sequence: nextSequence, event: event, summary: summary, folded: summary.lowercased())
        nextSequence += 1
        if storage.count < capacity {
            storage.append(entry)
        } else {
            storage[head] = entry
            head = (head + 1) % capacity
        }
    }

    /// Oldest first.
    var entries: [Entry] {
        head == 0 ? storage : Array(storage[head...] + storage[..<head])
    }

    /// Oldest first, only those whose summary contains `filter` (case-insensitive; empty = all).
    func entries(matching filter: String) -> [Entry] {
        let needle = filter.lowercased()
        return needle.isEmpty ? entries : entries.filter { $0.folded.contains(needle) }
    }
}
