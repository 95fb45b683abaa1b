/// When a RabbitMQ consumer tries its connection again, as an oslo.messaging 18.x server's
/// listener does (`AMQPListener.poll` → `Connection.consume` → `Connection.ensure` over kombu's
/// `ensure` and `retry_over_time`). Times are seconds on any monotonic clock, passed in.
///
/// - The first connection of all (oslo's `ensure_connection` in `Connection.__init__`): at once,
///   then kombu's intervals, which start at `rabbit_retry_interval` and grow by
///   `rabbit_retry_backoff` up to `rabbit_interval_max` (linear, not doubling): 0, 1, 4, 9, 16 … s.
/// - A lost connection: every failure sleeps `kombu_reconnect_delay` (1 s) in oslo's error
///   callback, then kombu's interval (none for the loss itself). But oslo retries inside one
///   `consume(timeout)` call, whose timeout is the listener's poll timeout: it doubles from 1 ms
///   on each idle poll up to 5 s (`ACK_REQUEUE_EVERY_SECONDS_MAX`) and falls back to 1 ms on each
///   message. A failure after that timeout ends the call and the next one starts the schedule
///   over, with the poll timeout doubled. An idle server (poll timeout 5 s) that lost its broker
///   tries 1, 3, 7, 8, 10, 14, 15 … s after the loss (its log: "Trying again in 1, 2, 4, 1, 2,
///   4 … seconds"); a busy one tries every second at first.
/// - Where in its poll round a listener is when its broker goes decides its schedule (an oslo
///   server whose round was 4.5 s old tries 1, 2, 4, 8, 9 … s after the loss): `phase` places
///   this connection in its round. Several connections at different phases (a worker's consumer
///   threads, as several oslo listeners in their own rounds) together try at least every 2 s,
///   none of them more often than an oslo listener.
/// - A connection made starts over.
public struct ReconnectBackoff: Equatable, Sendable {
    /// oslo's `rabbit_retry_interval`: kombu's first interval.
    public var retryInterval: Double
    /// oslo's `rabbit_retry_backoff`: what each failed attempt adds to the interval.
    public var retryBackoff: Double
    /// oslo's `rabbit_interval_max`: the interval's cap.
    public var intervalMax: Double
    /// oslo's `kombu_reconnect_delay` (1 s, not an option here).
    public var reconnectDelay: Double
    /// How far into its poll round (0 ..< 1 of the poll timeout) this connection is when it fails.
    public var phase = 0.0
    /// oslo's listener poll timeout bounds: `ACK_REQUEUE_EVERY_SECONDS_MIN` / `_MAX`.
    public static let pollTimeoutMin = 0.001
    public static let pollTimeoutMax = 5.0

    /// Failed attempts in this round of kombu's schedule.
    public private(set) var failures = 0
    /// A connection was made and lost since (oslo's `consume` rounds apply).
    public private(set) var reconnecting = false
    /// The current `consume` call: when it began and its timeout.
    private var roundStart = 0.0
    private var pollTimeout = pollTimeoutMax

    public init(
        retryInterval: Double = 1, retryBackoff: Double = 2, intervalMax: Double = 30, reconnectDelay: Double = 1
    ) {
        self.retryInterval = retryInterval
        self.retryBackoff = retryBackoff
        self.intervalMax = intervalMax
        self.reconnectDelay = reconnectDelay
    }

    /// The connection in use failed at `now`; the last message came at `lastMessage` (nil:
    /// none). Seconds until the first attempt.
    public mutating func lost(at now: Double, lastMessage: Double?) -> Double {
        // oslo's poll timeout after `idle` seconds without a message: the doubling from 1 ms
        // has summed to about `idle`.
        let idle = lastMessage.map { max(0, now - $0) } ?? .infinity
        pollTimeout = min(Self.pollTimeoutMax, max(Self.pollTimeoutMin, idle))
        reconnecting = true
        _ = startRound(at: now - phase * pollTimeout)
        return reconnectDelay
    }

    /// An attempt failed at `now`: seconds until the next one.
    public mutating func failed(at now: Double) -> Double {
        if reconnecting && now - roundStart >= pollTimeout {
            // oslo's consume timed out: the listener polls again with a doubled timeout, and
            // the new call fails at once on the lost connection.
            pollTimeout = min(Self.pollTimeoutMax, pollTimeout * 2)
            return startRound(at: now)
        }
        let interval = min(retryInterval + Double(failures) * retryBackoff, intervalMax)
        failures += 1
        return (reconnecting ? reconnectDelay : 0) + interval
    }

    /// An attempt succeeded: the next loss starts the schedule over.
    public mutating func connected() {
        failures = 0
        reconnecting = false
    }

    private mutating func startRound(at now: Double) -> Double {
        roundStart = now
        failures = 0
        return reconnectDelay
    }
}
