import Foundation
import NIOConcurrencyHelpers
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
    /// Set when the worker begins its graceful stop: responses from then on close their connection.
    let draining: NIOLockedValueBox<Bool>
    /// How long a connection idle at the start of the drain may stay open for one more request.
    let drainGrace: TimeAmount
}

/// The options a connection needs, in NIO's units.
struct ResolvedHTTPOptions: Sendable {
    let keepAlive: Bool
    let maxHeaderLine: Int
    let maxBody: Int
}

/// Turns HTTP requests into app calls: collects the body, routes through the URL map, writes
/// the response with Content-Length, X-Worker-Pid and, when the connection will not be kept,
/// `Connection: close`. Requests that cannot be served get their status here (413, 414, 431).
final class APIRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ServerContext
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// Set when the request was already answered (too large): its remaining parts are dropped.
    private var refused = false
    private var started: NIODeadline = .now()
    /// A request has begun and its response is not written yet.
    private var busy = false

    init(server: ServerContext) { self.server = server }

    /// The graceful stop reached this connection (see `DrainInterceptor`). A request under way
    /// is finished and its response closes the connection; an idle connection gets
    /// `drainGrace` to send one more request (a keep-alive client may have one on the wire now:
    /// closing at once would reset it), then is closed.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is DrainInterceptor.Drain else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard !busy else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: server.drainGrace) {
            let (handler, context) = loopBound.value
            if !handler.busy { context.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            busy = true
            body.removeAll(keepingCapacity: true)
            refused = false
            if server.accessLog != nil { started = .now() }
            if head.uri.utf8.count > server.options.maxHeaderLine {
                refused = true
                respond(context: context, head: head, APIResponse.text(414, "Request-URI Too Long"), keepAlive: false)
            } else if let long = head.headers.first(where: { $0.name.utf8.count + 2 + $0.value.utf8.count > server.options.maxHeaderLine }) {
                refused = true
                respond(context: context, head: head, APIResponse.text(431, "Request Header Fields Too Large: \(long.name)"), keepAlive: false)
            }
        case .body(var chunk):
            guard !refused, let head else { return }
            if body.count + chunk.readableBytes > server.options.maxBody {
                refused = true
                respond(context: context, head: head, APIResponse.text(413, "Request Entity Too Large"), keepAlive: false)
                return
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            if refused { return }
            let keepAlive = server.options.keepAlive && head.isKeepAlive && !server.draining.withLockedValue { $0 }
            let headers = head.headers.map { (name: $0.name, value: $0.value) }
            switch server.urlMap.respond(to: head.method.rawValue, uri: head.uri, headers: headers, body: body) {
            case .now(let response):
                respond(context: context, head: head, response, keepAlive: keepAlive)
            case .blocking(let work):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                server.threadPool.runIfActive(eventLoop: context.eventLoop) { work() }.whenComplete { result in
                    let (handler, context) = loopBound.value
                    let response = (try? result.get()) ?? .fault(503, "computeFault", "The worker is stopping.")
                    handler.respond(context: context, head: head, response, keepAlive: keepAlive)
                }
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head request: HTTPRequestHead, _ response: APIResponse, keepAlive: Bool) {
        busy = false
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(5 + response.headers.count)
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "X-Worker-Pid", value: server.workerPid)
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        else if request.version.major == 1 && request.version.minor == 0 { headers.add(name: "Connection", value: "keep-alive") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
        if let log = server.accessLog {
            // oslo's wsgi_log_format: client "request line" status: N  len: N time: S
            let peer = context.channel.remoteAddress?.ipAddress ?? "-"
            let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            log("\(peer) \"\(request.method.rawValue) \(request.uri) HTTP/\(request.version.major).\(request.version.minor)\" status: \(response.status)  len: \(response.body.count) time: \(String(format: "%.7f", seconds))")
        }
    }
}

/// Answers what NIO's parser refuses: 431 for a header line over `max_header_line`, 400 for
/// anything else malformed, both with X-Worker-Pid and `Connection: close`; then closes. When a
/// response was already under way the connection is just closed.
final class ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let workerPid: String
    private var responding = false
    private var failed = false

    init(workerPid: String) { self.workerPid = workerPid }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !failed else { return }
        failed = true
        if responding {
            context.close(promise: nil)
            return
        }
        let (status, text): (HTTPResponseStatus, String) = parserError == .headerOverflow
            ? (.init(statusCode: 431), "Request Header Fields Too Large")
            : (.badRequest, "Bad Request: \(parserError)")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "X-Worker-Pid", value: workerPid)
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responding = true
        case .end: responding = false
        case .body: break
        }
        context.write(data, promise: promise)
    }
}

/// First in a connection's pipeline: takes the quiescing helper's `ChannelShouldQuiesceEvent`
/// before NIO's pipelining handler, which would close an idle keep-alive connection at once,
/// racing a request the client may have just sent; `APIRequestHandler` drains it instead.
final class DrainInterceptor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    struct Drain {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.fireUserInboundEventTriggered(Drain())
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Closes a connection that has sent nothing for `client_socket_timeout` (eventlet's socket
/// timeout): a client that connects and says nothing does not hold a pool slot forever.
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
