import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// What every connection handler of one worker shares.
struct ServerContext: Sendable {
    let urlMap: URLMap
    let threadPool: NIOThreadPool
    let options: ResolvedHTTPOptions
    /// Sent on every response: which worker answered.
    let workerPid: String
    let accessLog: (@Sendable (String) -> Void)?
    /// How long a connection idle at the start of the drain may stay open for one more request.
    let drainGrace: TimeAmount
}

/// The options a connection needs, in NIO's units.
struct ResolvedHTTPOptions: Sendable {
    let keepAlive: Bool
    let maxHeaderLine: Int
    let maxBody: Int
    /// nil = wait forever.
    let clientSocketTimeout: TimeAmount?
    /// How long a request head may take to arrive; nil = forever.
    let clientHeaderTimeout: TimeAmount?
}

/// The one HTTP handler of a connection, after NIO's request decoder (llhttp). It
///
/// - collects a request's body, routes it through the URL map, and writes the response;
/// - serialises the response itself, status line, headers and body in one buffer and one write
///   (NIO's response encoder, pipelining helper and header validator each cost a pass through
///   the pipeline per part: a third of the worker's time at 60k requests/s);
/// - keeps pipelined requests in order: parts that arrive while a request is on the thread pool
///   wait their turn;
/// - answers what the parser refuses (400; 431 for a line over `max_header_line`) with
///   X-Worker-Pid and `Connection: close`;
/// - closes the connection after `client_socket_timeout` without a byte from the client (its own
///   timer, re-armed only when it fires: no extra handler in every read's path);
/// - closes a connection whose request head has not all arrived `client_header_timeout` after it
///   began (408 if some of it came), so half-sent heads cannot hold the pool (see `headSince`);
/// - drains on the quiescing helper's event (see `userInboundEventTriggered`).
final class APIRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private let server: ServerContext
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// Set when the request was already answered (too large): its remaining parts are dropped.
    private var refused = false
    private var started: NIODeadline = .now()
    /// A request has begun and its response is not written yet.
    private var busy = false
    /// A request is on the thread pool: parts of the next ones wait here.
    private var waitingForPool = false
    private var queued: [HTTPServerRequestPart] = []
    /// After a parser error or a closing response nothing more is read or written.
    private var closing = false
    private var draining = false
    /// When the client last sent something, for `client_socket_timeout`.
    private var lastRead: NIODeadline = .now()
    private var idleTimer: Scheduled<Void>?
    /// Since when a request head has been arriving, for `client_header_timeout`; nil while a
    /// request is under way or a keep-alive connection is idle. The first head's time runs from
    /// the connection's start (nginx's rule). A later head's runs from the first read that gives
    /// the parser bytes and no request part: this handler sees only parts, and a read that ends
    /// one request and begins the next looks like one that ends a request (that head then has
    /// `client_socket_timeout`, as an idle connection has). No handler before the decoder for it.
    private var headSince: NIODeadline?
    /// Bytes of that head arrived: a 408 on timeout (a connection that sent nothing is just closed).
    private var headStarted = false
    /// Request parts since the last read completed.
    private var partsThisRead = 0
    private var headerTimer: Scheduled<Void>?

    init(server: ServerContext) { self.server = server }

    func channelActive(context: ChannelHandlerContext) {
        if let timeout = server.options.clientSocketTimeout { armIdleTimer(context: context, in: timeout) }
        if let timeout = server.options.clientHeaderTimeout {
            headSince = .now()
            armHeaderTimer(context: context, in: timeout)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Gone from the event loop's timer heap now, not when they would have fired (up to 900 s on).
        idleTimer?.cancel()
        headerTimer?.cancel()
        context.fireChannelInactive()
    }

    /// Fires `timeout` after the last read; a connection that sent something since is given the
    /// rest of its time, one that did not is closed.
    private func armIdleTimer(context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            guard context.channel.isActive, let timeout = handler.server.options.clientSocketTimeout else { return }
            let idle = NIODeadline.now() - handler.lastRead
            if idle >= timeout {
                context.close(promise: nil)
            } else {
                handler.armIdleTimer(context: context, in: timeout - idle)
            }
        }
    }

    /// Fires `client_header_timeout` after a head began to arrive (re-armed meanwhile, as the
    /// idle timer is): 408 and close if it is still not all there.
    private func armHeaderTimer(context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            guard context.channel.isActive, !handler.closing, let timeout = handler.server.options.clientHeaderTimeout
            else { return }
            guard let since = handler.headSince else {
                handler.armHeaderTimer(context: context, in: timeout)
                return
            }
            let waited = NIODeadline.now() - since
            if waited < timeout {
                handler.armHeaderTimer(context: context, in: timeout - waited)
            } else if handler.headStarted {
                handler.respond(
                    context: context, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"),
                    .text(408, "Request Timeout"), keepAlive: false)
            } else {
                context.close(promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if server.options.clientSocketTimeout != nil { lastRead = .now() }
        if server.options.clientHeaderTimeout != nil {
            // Bytes and no part, no request under way: a head is arriving.
            if partsThisRead == 0 && !busy {
                if headSince == nil { headSince = .now() }
                headStarted = true
            }
            partsThisRead = 0
        }
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        partsThisRead += 1
        if case .head = part {
            headSince = nil
            headStarted = false
        }
        if waitingForPool {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        guard !closing else { return }
        switch part {
        case .head(let head):
            self.head = head
            busy = true
            body.removeAll(keepingCapacity: true)
            refused = false
            if server.accessLog != nil { started = .now() }
            if head.uri.utf8.count > server.options.maxHeaderLine {
                refused = true
                respond(context: context, head: head, .text(414, "Request-URI Too Long"), keepAlive: false)
            }
        case .body(var chunk):
            guard !refused, let head else { return }
            if body.count + chunk.readableBytes > server.options.maxBody {
                refused = true
                respond(context: context, head: head, .text(413, "Request Entity Too Large"), keepAlive: false)
                return
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            if refused { return }
            let keepAlive = server.options.keepAlive && head.isKeepAlive && !draining
            switch server.urlMap.respond(to: head.method.rawValue, uri: head.uri, headers: head.headers, body: body) {
            case .now(let response):
                respond(context: context, head: head, response, keepAlive: keepAlive)
            case .blocking(let work):
                waitingForPool = true
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                server.threadPool.runIfActive(eventLoop: context.eventLoop) { work() }.whenComplete { result in
                    let (handler, context) = loopBound.value
                    let response = (try? result.get()) ?? .fault(503, "computeFault", "The worker is stopping.")
                    handler.waitingForPool = false
                    handler.respond(context: context, head: head, response, keepAlive: keepAlive)
                    handler.handleQueued(context: context)
                }
            }
        }
    }

    private func handleQueued(context: ChannelHandlerContext) {
        while !waitingForPool && !queued.isEmpty {
            handle(queued.removeFirst(), context: context)
        }
    }

    private func respond(
        context: ChannelHandlerContext, head request: HTTPRequestHead, _ response: APIResponse, keepAlive: Bool
    ) {
        busy = false
        guard context.channel.isActive, !closing else { return }
        let omitBody = request.method == .HEAD || response.status == 204 || response.status == 304
        var buffer = context.channel.allocator.buffer(capacity: 160 + response.body.count)
        buffer.writeStaticString(request.version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(response.status))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(HTTPResponseStatus(statusCode: response.status).reasonPhrase)
        buffer.writeStaticString("\r\nContent-Type: ")
        buffer.writeString(response.contentType)
        if response.status != 204 && response.status != 304 {
            buffer.writeStaticString("\r\nContent-Length: ")
            buffer.writeString(String(response.body.count))
        }
        buffer.writeStaticString("\r\nX-Worker-Pid: ")
        buffer.writeString(server.workerPid)
        for (name, value) in response.headers {
            buffer.writeStaticString("\r\n")
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
        }
        if !keepAlive {
            buffer.writeStaticString("\r\nConnection: close")
        } else if request.version.minor == 0 {
            buffer.writeStaticString("\r\nConnection: keep-alive")
        }
        buffer.writeStaticString("\r\n\r\n")
        if !omitBody { buffer.writeBytes(response.body) }
        write(buffer, context: context, thenClose: !keepAlive)
        if let log = server.accessLog {
            // oslo's wsgi_log_format: client "request line" status: N  len: N time: S
            let peer = context.channel.remoteAddress?.ipAddress ?? "-"
            let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            log(
                "\(peer) \"\(request.method.rawValue) \(request.uri) HTTP/\(request.version.major).\(request.version.minor)\" status: \(response.status)  len: \(response.body.count) time: \(String(format: "%.7f", seconds))"
            )
        }
    }

    private func write(_ buffer: ByteBuffer, context: ChannelHandlerContext, thenClose: Bool) {
        if thenClose {
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }

    /// What llhttp refuses: 431 for a header line over `max_header_line`, 400 for the rest. When a
    /// response is under way (a pipelined request broke), the connection is just closed.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        guard !closing else { return }
        if waitingForPool {
            closing = true
            context.close(promise: nil)
            return
        }
        let response: APIResponse =
            parserError == .headerOverflow
            ? .text(431, "Request Header Fields Too Large")
            : .text(400, "Bad Request: \(parserError)")
        respond(
            context: context, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), response,
            keepAlive: false)
    }

    /// The quiescing helper's `ChannelShouldQuiesceEvent` (graceful stop): a request under way is
    /// finished and its response closes the connection; an idle connection gets `drainGrace` to
    /// send one more request (a keep-alive client may have one on the wire now: closing at once
    /// would reset it), answered with `Connection: close`, then is closed.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            draining = true
            guard !busy else { return }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: server.drainGrace) {
                let (handler, context) = loopBound.value
                if !handler.busy { context.close(promise: nil) }
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
