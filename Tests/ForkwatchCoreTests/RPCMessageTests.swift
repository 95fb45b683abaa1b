import Testing

@testable import ForkwatchCore

/// oslo.messaging's wire format and dispatch rules, as the reference records them.
@Suite struct RPCMessageTests {
    @Test func aCallIsEnvelopedWithItsContextFlattened() throws {
        let request = RPCRequest(
            method: "echo", args: ["value": .array([.number(1), .string("two"), .null])], version: "1.2",
            msgId: "m1", replyQueue: "reply_q", uniqueId: "u1", context: ["user": .string("alice")])
        let outer = try JSONValue.parse(request.body)
        #expect(outer["oslo.version"]?.string == "2.0")
        let inner = try JSONValue.parse(try #require(outer["oslo.message"]?.string))
        #expect(inner["method"]?.string == "echo")
        #expect(
            inner["_msg_id"]?.string == "m1" && inner["_reply_q"]?.string == "reply_q" && inner["_timeout"] == .null)
        #expect(inner["_unique_id"]?.string == "u1")
        #expect(inner["_context_user"]?.string == "alice")
        #expect(try RPCRequest.decode(request.body) == request)
        // A cast carries no _msg_id / _reply_q / _timeout.
        let cast = RPCRequest(method: "m", uniqueId: "u2")
        #expect(!cast.body.contains("_msg_id") && !cast.body.contains("_reply_q"))
    }

    @Test func theCapturedPythonBodyDecodes() throws {
        // A body captured from Python oslo.messaging 18.3.1 (reference §2).
        let body =
            #"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"value\": [1, \"two\", null]}, \"version\": \"1.2\", \"_msg_id\": \"629d15e0346642138ee4d76752fa3e4b\", \"_reply_q\": \"reply_6f0162e3c83642759c925744a6713d02\", \"_timeout\": null, \"_unique_id\": \"cf16e049ffbc441d80325d55dde84d2a\", \"_context_user\": \"alice\", \"_context_request_id\": \"req-1\"}"}"#
        let request = try RPCRequest.decode(body)
        #expect(request.method == "echo" && request.version == "1.2")
        #expect(request.replyQueue == "reply_6f0162e3c83642759c925744a6713d02")
        #expect(request.context == ["user": .string("alice"), "request_id": .string("req-1")])
        // The legacy 1.0 format: a bare payload.
        #expect(try RPCRequest.decode(#"{"method": "ping", "args": {}}"#).method == "ping")
        #expect(throws: RPCDecodeError.self) {
            try RPCRequest.decode(#"{"oslo.version": "3.0", "oslo.message": "{}"}"#)
        }
        #expect(throws: RPCDecodeError.self) { try RPCRequest.decode("not json") }
        #expect(throws: RPCDecodeError.self) {
            try RPCRequest.decode(#"{"oslo.version": "2.0", "oslo.message": "[]"}"#)
        }
    }

    /// kombu decodes by the AMQP content type: anything but application/json (none included)
    /// is not a message oslo reads, whatever the body.
    @Test(arguments: ["text/plain", "", "application/x-python-serialize", "application/json; charset=utf-8"])
    func aBodyOfAnotherContentTypeIsNotRead(contentType: String) {
        let body = RPCRequest(method: "echo", msgId: "m", replyQueue: "q", uniqueId: "u").body
        #expect(throws: RPCDecodeError.self) { try RPCRequest.decode(body, contentType: contentType) }
        #expect((try? RPCRequest.decode(body, contentType: "application/json"))?.method == "echo")
    }

    /// A readable call with a bad method or args keeps its reply routing, so that it is answered
    /// (oslo's dispatcher raises on it); the failure is the one Python 3.11 raises.
    @Test(arguments: [
        (#"{}"#, RPCMalformation.method(.null), "TypeError", "attribute name must be string, not 'NoneType'"),
        (#"{"method": null}"#, .method(.null), "TypeError", "attribute name must be string, not 'NoneType'"),
        (#"{"method": 42}"#, .method(.number(42)), "TypeError", "attribute name must be string, not 'int'"),
        (#"{"method": 1.5}"#, .method(.number(1.5)), "TypeError", "attribute name must be string, not 'float'"),
        (
            #"{"method": ["echo"]}"#, .method(.array([.string("echo")])), "TypeError",
            "attribute name must be string, not 'list'"
        ),
        (
            #"{"method": "echo", "args": [1]}"#, .args(.array([.number(1)])), "AttributeError",
            "'list' object has no attribute 'items'"
        ),
        (
            #"{"method": "echo", "args": "x"}"#, .args(.string("x")), "AttributeError",
            "'str' object has no attribute 'items'"
        ),
        (
            #"{"method": "echo", "args": null}"#, .args(.null), "AttributeError",
            "'NoneType' object has no attribute 'items'"
        ),
        (
            #"{"method": "echo", "args": true}"#, .args(.bool(true)), "AttributeError",
            "'bool' object has no attribute 'items'"
        ),
    ])
    func aMalformedCallIsAnsweredWithPythonsError(
        fields: String, malformation: RPCMalformation, className: String, message: String
    ) throws {
        var payload = try JSONValue.parse(fields)
        if case .object(var object) = payload {
            object["_msg_id"] = .string("m1")
            object["_reply_q"] = .string("reply_q")
            object["_unique_id"] = .string("u1")
            payload = .object(object)
        }
        let request = try RPCRequest.decode(RPCEnvelope.wrap(payload.serialized))
        #expect(request.malformation == malformation)
        #expect(request.isCall && request.msgId == "m1" && request.replyQueue == "reply_q")
        let endpoints = [RPCEndpoint(methods: [RPCMethod("echo") { _ in .null }])]
        guard case .failure(let failure) = RPCDispatcher.dispatch(request, to: endpoints) else {
            Issue.record("dispatched")
            return
        }
        #expect(failure.className == className && failure.module == "builtins" && failure.message == message)
        #expect(failure.args == [.string(message)])
    }

    /// Where Python raises decides the failure: no compatible endpoint is UnsupportedVersion
    /// before the method is looked at, and bad args never matter for a method nobody has.
    @Test func aMalformedCallFailsWhereOslosDispatcherWould() throws {
        let endpoints = [RPCEndpoint(methods: [RPCMethod("echo") { _ in .null }])]
        func failure(_ payload: String) throws -> RPCFailure? {
            guard case .failure(let failure) = RPCDispatcher.dispatch(try RPCRequest.decode(payload), to: endpoints)
            else { return nil }
            return failure
        }
        let versioned = try failure(#"{"method": 42, "version": "2.0"}"#)
        #expect(versioned?.className == "UnsupportedVersion")
        #expect(versioned?.message == "Endpoint does not support RPC version 2.0. Attempted method: 42")
        #expect(try failure(#"{"version": "2.0"}"#)?.message.hasSuffix("Attempted method: None") == true)
        #expect(try failure(#"{"method": "nope", "args": [1]}"#)?.className == "NoSuchMethod")
        #expect(try failure(#"{"method": "_echo", "args": [1]}"#)?.className == "NoSuchMethod")
    }

    @Test func repliesCarryResultOrAnOsloFailure() throws {
        let ok = RPCReply(result: .object(["x": .number(1)]), msgId: "m", uniqueId: "u")
        #expect(try RPCReply.decode(ok.body) == ok)
        let failure = RPCFailure(
            className: "ValueError", module: "builtins", message: "kaboom", args: [.string("kaboom"), .number(42)])
        let failed = try RPCReply.decode(RPCReply(failure: failure, msgId: "m", uniqueId: "u").body)
        #expect(failed.failure == failure && failed.ending)
        // Triple encoding: the failure is a JSON string inside the JSON string payload.
        let inner = try JSONValue.parse(
            try #require(
                try JSONValue.parse(RPCReply(failure: failure, msgId: "m", uniqueId: "u").body)["oslo.message"]?.string)
        )
        #expect(inner["failure"]?.string?.contains("\"class\": \"ValueError\"") == true)
    }

    @Test func versionsFollowOslosRule() {
        #expect(RPCVersion.isCompatible(current: "4.5", requested: "4.0"))
        #expect(RPCVersion.isCompatible(current: "4.5", requested: "4.5"))
        #expect(!RPCVersion.isCompatible(current: "4.5", requested: "4.6"))
        #expect(!RPCVersion.isCompatible(current: "4.5", requested: "1.0"))
        #expect(!RPCVersion.isCompatible(current: "1.0", requested: "2.0"))
        #expect(RPCVersion.isCompatible(current: "1.2.3", requested: "1.2.1"))
        #expect(!RPCVersion.isCompatible(current: "x", requested: "1.0"))
    }

    @Test func theDispatcherPicksTheEndpointAndNamesItsErrorsAsOsloDoes() throws {
        let endpoints = [
            RPCEndpoint(
                version: "4.5",
                methods: [RPCMethod("add") { call in .number(Double(try call.int("a") + call.int("b"))) }]),
            RPCEndpoint(methods: [RPCMethod("echo") { call in .object(call.context) }]),
        ]
        func run(
            _ method: String, version: String? = nil, args: [String: JSONValue] = [:]
        ) -> Result<JSONValue, RPCFailure> {
            RPCDispatcher.dispatch(
                RPCRequest(method: method, args: args, version: version, uniqueId: "u"), to: endpoints)
        }
        #expect(try run("add", version: "4.1", args: ["a": .number(2), "b": .number(3)]).get() == .number(5))
        #expect(try run("echo").get()["client_timeout"] == .null)
        guard case .failure(let missing) = run("add", version: "4.0", args: ["a": .number(1)]) else {
            Issue.record("no failure")
            return
        }
        #expect(missing.className == "TypeError" && missing.module == "builtins")
        guard case .failure(let unknown) = run("nope") else {
            Issue.record("no failure")
            return
        }
        #expect(unknown.className == "NoSuchMethod" && unknown.module == "oslo_messaging.rpc.dispatcher")
        guard case .failure(let version) = run("add", version: "5.0") else {
            Issue.record("no failure")
            return
        }
        #expect(version.className == "UnsupportedVersion")
        guard case .failure(let hidden) = run("_add", version: "4.0") else {
            Issue.record("no failure")
            return
        }
        #expect(hidden.className == "NoSuchMethod")
    }

    @Test func statsKeepCountsAndPercentiles() {
        var recorder = RPCStatsRecorder()
        for index in 1...100 {
            recorder.began("m")
            recorder.ended("m", seconds: Double(index) / 1000, failed: index % 10 == 0)
        }
        recorder.began("m")
        let stats = recorder.snapshot[0]
        #expect(stats.handled == 100 && stats.failures == 10 && stats.inFlight == 1)
        #expect(stats.p50 == 0.05 && stats.p95 == 0.095)
    }
}
