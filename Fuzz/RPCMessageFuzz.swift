// oslo.messaging bodies as the RPC server and client read them: RPCRequest.decode,
// RPCReply.decode (and the failure inside a reply).
//
// Properties:
// - decoding never traps; errors are RPCDecodeError values;
// - a request that decodes, written with `body`, decodes to the same request (the reply queue and
//   monitor timeout only where there is a _msg_id: a cast has neither); a reply likewise (its
//   failure re-read from oslo's JSON string).

import ForkwatchCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRPCMessage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = String(decoding: bytes(data, size), as: UTF8.self)
    if let request = try? RPCRequest.decode(body) {
        let written = request.body
        let again: RPCRequest
        do { again = try RPCRequest.decode(written) } catch {
            fatalError("property violated: \(request) written as \(written) does not decode: \(error)")
        }
        var expected = request
        if expected.msgId == nil {
            expected.replyQueue = nil
            expected.callMonitorTimeout = nil
        }
        require(again == expected, "\(request) written as \(written) reads back as \(again)")
        require(again.body == written, "body is not a fixpoint")
    }
    if let reply = try? RPCReply.decode(body) {
        let written = reply.body
        let again: RPCReply
        do { again = try RPCReply.decode(written) } catch {
            fatalError("property violated: \(reply) written as \(written) does not decode: \(error)")
        }
        require(again == reply, "\(reply) written as \(written) reads back as \(again)")
    }
    return 0
}
