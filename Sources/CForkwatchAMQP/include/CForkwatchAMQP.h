#ifndef CFORKWATCH_AMQP_H
#define CFORKWATCH_AMQP_H
// The RabbitMQ transport's AMQP calls, in C over librabbitmq: one connection, channel 1,
// oslo.messaging's flags and properties. Every call returns 0 (or a count) on success and -1 on
// failure with the reason in fw_amqp_error(); after a failure the connection is unusable: close it.
#include <stddef.h>
#include <stdint.h>

typedef struct fw_amqp fw_amqp;

/// Connects, logs in (PLAIN), opens channel 1. heartbeat: seconds (0 = none). NULL on failure,
/// with the reason in `error`.
fw_amqp *fw_amqp_connect(const char *host, int port, const char *vhost, const char *user, const char *password,
                         int heartbeat, const char *connection_name, char *error, size_t error_size);
void fw_amqp_close(fw_amqp *amqp);
const char *fw_amqp_error(const fw_amqp *amqp);

int fw_amqp_declare_exchange(fw_amqp *amqp, const char *name, const char *type, int durable, int auto_delete);
/// expires_ms > 0 adds x-expires (oslo's reply and fanout queues).
int fw_amqp_declare_queue(fw_amqp *amqp, const char *name, int durable, int auto_delete, long expires_ms);
int fw_amqp_bind(fw_amqp *amqp, const char *queue, const char *exchange, const char *key);
int fw_amqp_delete_queue(fw_amqp *amqp, const char *name);
/// Messages ready in a queue (a passive queue.declare): the count, or -1 (no such queue: the
/// channel is closed by the broker, so the connection must be made again).
long fw_amqp_queue_depth(fw_amqp *amqp, const char *name);
int fw_amqp_qos(fw_amqp *amqp, int prefetch);
int fw_amqp_consume(fw_amqp *amqp, const char *queue, const char *tag);
/// Publisher confirms on this channel (oslo's send connections run in confirm mode).
int fw_amqp_confirm_select(fw_amqp *amqp);

/// Publishes with oslo's properties (application/json, utf-8, persistent, empty headers), and
/// `expiration` when not NULL. With confirms on, waits for the broker's ack; a mandatory message
/// nobody could take comes back: returns 1 ("returned") instead of 0.
int fw_amqp_publish(fw_amqp *amqp, const char *exchange, const char *key, const char *body, size_t length,
                    const char *expiration, int mandatory);

/// The next delivery, waiting up to timeout_ms: 1 with *body (malloc'd, free it), the routing
/// key copied into `key` and the content-type property into `content_type` ("" when the message
/// has none), 0 on timeout, -1 on error. Heartbeats are handled meanwhile.
int fw_amqp_next(fw_amqp *amqp, int timeout_ms, char **body, size_t *length, uint64_t *delivery_tag,
                 char *key, size_t key_size, char *content_type, size_t content_type_size);
/// Acknowledges a delivery once handled (a message that is not an RPC one too: it is dropped,
/// as oslo's reject without requeue drops it).
int fw_amqp_ack(fw_amqp *amqp, uint64_t delivery_tag);
/// basic.reject without requeue: what oslo does with a message it cannot read (the broker
/// drops it, or dead-letters it where a policy says so).
int fw_amqp_reject(fw_amqp *amqp, uint64_t delivery_tag);

#endif
