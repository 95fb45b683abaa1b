#!/usr/bin/env python3
"""Publishes two oslo.messaging calls of a valid body but another AMQP content type (text/plain, and
none) to exchange `openstack`, key TOPIC, with a dead-letter exchange `fw-dlx` -> queue `fw-dead`
ready, and reports what became of them: one JSON line {"dead": [content types dead-lettered],
"replies": N}. The caller puts a dead-letter policy on TOPIC's queue first: a message its consumer
rejects lands in `fw-dead`; one it acknowledges does not.

  content_type_probe.py PORT TOPIC     (py-amqp, as in the venv of venv.sh; guest/guest on 127.0.0.1)
"""
import json
import sys
import time
import uuid

import amqp

port, topic = sys.argv[1], sys.argv[2]
conn = amqp.Connection(host="127.0.0.1:" + port, userid="guest", password="guest")
conn.connect()
ch = conn.channel()
ch.exchange_declare("fw-dlx", "fanout", durable=False, auto_delete=False)
ch.queue_declare("fw-dead", durable=False, auto_delete=False)
ch.queue_purge("fw-dead")
ch.queue_bind("fw-dead", "fw-dlx", "")
reply = "reply_ct_" + uuid.uuid4().hex
ch.queue_declare(reply, durable=False, auto_delete=False, arguments={"x-expires": 600000})
for content_type in ["text/plain", None]:
    payload = {"method": "echo", "args": {}, "_msg_id": uuid.uuid4().hex, "_reply_q": reply,
               "_timeout": None, "_unique_id": uuid.uuid4().hex}
    body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(payload)})
    properties = {"content_encoding": "utf-8", "delivery_mode": 2}
    if content_type:
        properties["content_type"] = content_type
    ch.basic_publish(amqp.Message(body, **properties), exchange="openstack", routing_key=topic)
dead = []
deadline = time.time() + 20
while len(dead) < 2 and time.time() < deadline:
    message = ch.basic_get("fw-dead", no_ack=True)
    if message is None:
        time.sleep(0.05)
        continue
    dead.append(message.properties.get("content_type"))
# A reply is sent before the message is settled: whatever was answered is in the queue by now.
replies = 0
while ch.basic_get(reply, no_ack=True) is not None:
    replies += 1
ch.queue_delete(reply)
conn.close()
print(json.dumps({"dead": dead, "replies": replies}))
