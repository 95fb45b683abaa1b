#!/usr/bin/env python3
"""Times RPC servers' recovery from a broker restart, from a client's side (py-amqp: run it with
the venv's python). Start it while the broker is down:

  restart_probe.py PORT TOPIC [TOPIC...]

It connects to 127.0.0.1:PORT every 50 ms until the broker answers ("back"), then calls `echo` on
each TOPIC (exchange `openstack`, oslo's envelope, no version) every 100 ms, each call expiring
after 1 s, until every topic has answered once. A call sent before a topic's servers declared
their queues again is dropped by the new broker (no queue bound), so the first reply marks the
servers' recovery. Prints one JSON line: {"served": {TOPIC: seconds from "back" to the first reply,
or null after 60 s}}.
"""
import json
import socket
import sys
import time
import uuid

import amqp

port, topics = sys.argv[1], sys.argv[2:]
LIMIT = 60
while True:
    try:
        conn = amqp.Connection(host="127.0.0.1:" + port, userid="guest", password="guest", connect_timeout=1)
        conn.connect()
        break
    except (OSError, amqp.exceptions.AMQPError):
        time.sleep(0.05)
back = time.monotonic()
ch = conn.channel()
# As oslo's clients do before publishing (a publish to a missing exchange closes the channel).
ch.exchange_declare("openstack", "topic", durable=False, auto_delete=False)
reply = "reply_probe_" + uuid.uuid4().hex
ch.queue_declare(reply, durable=False, auto_delete=False, arguments={"x-expires": 600000})
pending = {}
served = {}


def on_reply(message):
    inner = json.loads(json.loads(message.body)["oslo.message"])
    topic = pending.get(inner.get("_msg_id"))
    if topic and topic not in served:
        served[topic] = time.monotonic() - back


ch.basic_consume(reply, callback=on_reply, no_ack=True)
while len(served) < len(topics) and time.monotonic() - back < LIMIT:
    for topic in topics:
        if topic in served:
            continue
        msg_id = uuid.uuid4().hex
        pending[msg_id] = topic
        payload = {"method": "echo", "args": {}, "_msg_id": msg_id, "_reply_q": reply, "_timeout": None,
                   "_unique_id": uuid.uuid4().hex}
        body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(payload)})
        ch.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                      expiration="1000"), exchange="openstack", routing_key=topic)
    end = time.monotonic() + 0.1
    while time.monotonic() < end and len(served) < len(topics):
        try:
            conn.drain_events(timeout=max(0.001, end - time.monotonic()))
        except socket.timeout:
            pass
print(json.dumps({"served": {topic: served.get(topic) for topic in topics}}), flush=True)
conn.close()  # the reply queue expires (x-expires)
