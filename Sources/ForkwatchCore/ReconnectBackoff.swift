/// How long a RabbitMQ consumer waits before each attempt to connect again, as oslo.messaging's
/// rabbit driver does (`Connection.ensure` over kombu's `Connection.ensure` and
/// `retry_over_time`): when the connection is lost, `kombu_reconnect_delay` (1 s) before the
/// first attempt; after each failed attempt, `kombu_reconnect_delay` plus kombu's interval,
/// which starts at `rabbit_retry_interval` and grows by `rabbit_retry_backoff` up to
/// `rabbit_interval_max` (linear, not doubling). With oslo's defaults the attempts come 1, 3, 7,
/// 13, 21, 31, 43 … s after the loss. The first connection of all (oslo's `ensure_connection` in
/// `Connection.__init__`) waits kombu's interval alone: attempts at 0, 1, 4, 9, 16 … s. A
/// connection made starts the schedule over.
public struct ReconnectBackoff: Equatable, Sendable {
    /// oslo's `rabbit_retry_interval`: kombu's first interval.
    public var retryInterval: Double
    /// oslo's `rabbit_retry_backoff`: what each failed attempt adds to the interval.
    public var retryBackoff: Double
    /// oslo's `rabbit_interval_max`: the interval's cap.
    public var intervalMax: Double
    /// oslo's `kombu_reconnect_delay` (1 s, not an option here): oslo's error callback sleeps
    /// it on every failure, before kombu's own interval.
    public var reconnectDelay: Double
    /// Failed attempts since the last connection.
    public private(set) var failures = 0
    /// A connection was made and lost since (`kombu_reconnect_delay` applies).
    public private(set) var reconnecting = false

    public init(
        retryInterval: Double = 1, retryBackoff: Double = 2, intervalMax: Double = 30, reconnectDelay: Double = 1
    ) {
        self.retryInterval = retryInterval
        self.retryBackoff = retryBackoff
        self.intervalMax = intervalMax
        self.reconnectDelay = reconnectDelay
    }

    /// The connection in use failed: seconds until the first attempt.
    public mutating func lost() -> Double {
        failures = 0
        reconnecting = true
        return reconnectDelay
    }

    /// An attempt failed: seconds until the next one.
    public mutating func failed() -> Double {
        let interval = min(retryInterval + Double(failures) * retryBackoff, intervalMax)
        failures += 1
        return (reconnecting ? reconnectDelay : 0) + interval
    }

    /// An attempt succeeded: the next loss starts the schedule over.
    public mutating func connected() {
        failures = 0
        reconnecting = false
    }
}
