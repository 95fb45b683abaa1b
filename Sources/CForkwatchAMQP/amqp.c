#include "CForkwatchAMQP.h"
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct fw_amqp {
    amqp_connection_state_t conn;
    int confirms;
    uint64_t published;
    char error[512];
};

static void set_error(char *out, size_t size, const char *what, amqp_rpc_reply_t reply) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(out, size, "%s: ok", what);
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(out, size, "%s: missing RPC reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, size, "%s: %s", what, amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = (amqp_connection_close_t *)reply.reply.decoded;
            snprintf(out, size, "%s: connection closed by the broker: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = (amqp_channel_close_t *)reply.reply.decoded;
            snprintf(out, size, "%s: channel closed by the broker: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(out, size, "%s: broker error, method 0x%08X", what, reply.reply.id);
        }
        break;
    }
}

/// For the calls that return a librabbitmq status code rather than an RPC reply.
static int check_status(fw_amqp *amqp, int rc, const char *what) {
    if (rc == AMQP_STATUS_OK) return 0;
    snprintf(amqp->error, sizeof amqp->error, "%s: %s", what, amqp_error_string2(rc));
    return -1;
}

static int check(fw_amqp *amqp, const char *what) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(amqp->conn);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) return 0;
    set_error(amqp->error, sizeof amqp->error, what, reply);
    return -1;
}

fw_amqp *fw_amqp_connect(const char *host, int port, const char *vhost, const char *user, const char *password,
                         int heartbeat, const char *connection_name, char *error, size_t error_size) {
    fw_amqp *amqp = calloc(1, sizeof *amqp);
    if (!amqp) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    amqp->conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(amqp->conn);
    if (!socket) {
        snprintf(error, error_size, "cannot create a TCP socket");
        amqp_destroy_connection(amqp->conn);
        free(amqp);
        return NULL;
    }
    struct timeval timeout = {5, 0};
    int rc = amqp_socket_open_noblock(socket, host, port, &timeout);
    if (rc != AMQP_STATUS_OK) {
        snprintf(error, error_size, "cannot connect to %s:%d: %s", host, port, amqp_error_string2(rc));
        amqp_destroy_connection(amqp->conn);
        free(amqp);
        return NULL;
    }
    // oslo's client properties: the capabilities it announces and a connection name.
    amqp_table_entry_t capabilities[3];
    capabilities[0].key = amqp_cstring_bytes("authentication_failure_close");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    capabilities[1].key = amqp_cstring_bytes("connection.blocked");
    capabilities[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[1].value.value.boolean = 1;
    capabilities[2].key = amqp_cstring_bytes("consumer_cancel_notify");
    capabilities[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[2].value.value.boolean = 1;
    amqp_table_entry_t properties[3];
    properties[0].key = amqp_cstring_bytes("capabilities");
    properties[0].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[0].value.value.table.num_entries = 3;
    properties[0].value.value.table.entries = capabilities;
    properties[1].key = amqp_cstring_bytes("connection_name");
    properties[1].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[1].value.value.bytes = amqp_cstring_bytes(connection_name);
    properties[2].key = amqp_cstring_bytes("product");
    properties[2].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[2].value.value.bytes = amqp_cstring_bytes("forkwatch");
    amqp_table_t table = {3, properties};
    amqp_rpc_reply_t login = amqp_login_with_properties(amqp->conn, vhost, 0, 131072, heartbeat, &table,
                                                        AMQP_SASL_METHOD_PLAIN, user, password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
        set_error(error, error_size, "login", login);
        amqp_destroy_connection(amqp->conn);
        free(amqp);
        return NULL;
    }
    amqp_channel_open(amqp->conn, 1);
    if (check(amqp, "channel.open") != 0) {
        snprintf(error, error_size, "%s", amqp->error);
        amqp_destroy_connection(amqp->conn);
        free(amqp);
        return NULL;
    }
    return amqp;
}

void fw_amqp_close(fw_amqp *amqp) {
    if (!amqp) return;
    amqp_channel_close(amqp->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(amqp->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(amqp->conn);
    free(amqp);
}

const char *fw_amqp_error(const fw_amqp *amqp) { return amqp->error; }

int fw_amqp_declare_exchange(fw_amqp *amqp, const char *name, const char *type, int durable, int auto_delete) {
    amqp_exchange_declare(amqp->conn, 1, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, durable, auto_delete, 0,
                          amqp_empty_table);
    return check(amqp, "exchange.declare");
}

int fw_amqp_declare_queue(fw_amqp *amqp, const char *name, int durable, int auto_delete, long expires_ms) {
    amqp_table_entry_t expires;
    expires.key = amqp_cstring_bytes("x-expires");
    expires.value.kind = AMQP_FIELD_KIND_I32;  // as py-amqp encodes 1800000
    expires.value.value.i32 = (int32_t)expires_ms;
    amqp_table_t arguments = {expires_ms > 0 ? 1 : 0, expires_ms > 0 ? &expires : NULL};
    amqp_queue_declare(amqp->conn, 1, amqp_cstring_bytes(name), 0, durable, 0, auto_delete, arguments);
    return check(amqp, "queue.declare");
}

int fw_amqp_bind(fw_amqp *amqp, const char *queue, const char *exchange, const char *key) {
    amqp_queue_bind(amqp->conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange), amqp_cstring_bytes(key),
                    amqp_empty_table);
    return check(amqp, "queue.bind");
}

int fw_amqp_delete_queue(fw_amqp *amqp, const char *name) {
    amqp_queue_delete(amqp->conn, 1, amqp_cstring_bytes(name), 0, 0);
    return check(amqp, "queue.delete");
}

long fw_amqp_queue_depth(fw_amqp *amqp, const char *name) {
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(amqp->conn, 1, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    if (check(amqp, "queue.declare (passive)") != 0 || !ok) return -1;
    return (long)ok->message_count;
}

int fw_amqp_qos(fw_amqp *amqp, int prefetch) {
    amqp_basic_qos(amqp->conn, 1, 0, (uint16_t)prefetch, 0);
    return check(amqp, "basic.qos");
}

int fw_amqp_consume(fw_amqp *amqp, const char *queue, const char *tag) {
    amqp_basic_consume(amqp->conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag), 0, 0, 0, amqp_empty_table);
    return check(amqp, "basic.consume");
}

int fw_amqp_confirm_select(fw_amqp *amqp) {
    amqp_confirm_select(amqp->conn, 1);
    if (check(amqp, "confirm.select") != 0) return -1;
    amqp->confirms = 1;
    return 0;
}

int fw_amqp_publish(fw_amqp *amqp, const char *exchange, const char *key, const char *body, size_t length,
                    const char *expiration, int mandatory) {
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.content_encoding = amqp_cstring_bytes("utf-8");
    props.headers = amqp_empty_table;
    props.delivery_mode = 2;
    props.priority = 0;
    if (expiration) {
        props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        props.expiration = amqp_cstring_bytes(expiration);
    }
    amqp_bytes_t content = {length, (void *)body};
    int rc = amqp_basic_publish(amqp->conn, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes(key), mandatory, 0, &props,
                                content);
    if (check_status(amqp, rc, "basic.publish") != 0) return -1;
    if (!amqp->confirms) return 0;
    amqp->published++;
    int returned = 0;
    // Wait for the broker's basic.ack (or nack); a basic.return comes first for a mandatory
    // message no queue took.
    for (;;) {
        amqp_frame_t frame;
        struct timeval timeout = {30, 0};
        rc = amqp_simple_wait_frame_noblock(amqp->conn, &frame, &timeout);
        if (rc != AMQP_STATUS_OK) {
            snprintf(amqp->error, sizeof amqp->error, "waiting for the publish confirm: %s", amqp_error_string2(rc));
            return -1;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) continue;
        switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
            return returned;
        case AMQP_BASIC_NACK_METHOD:
            snprintf(amqp->error, sizeof amqp->error, "the broker refused the message (basic.nack)");
            return -1;
        case AMQP_BASIC_RETURN_METHOD: {
            // Its header and body follow: read and drop them.
            amqp_message_t message;
            amqp_rpc_reply_t reply = amqp_read_message(amqp->conn, frame.channel, &message, 0);
            if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
                set_error(amqp->error, sizeof amqp->error, "reading a returned message", reply);
                return -1;
            }
            amqp_destroy_message(&message);
            returned = 1;
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            snprintf(amqp->error, sizeof amqp->error, "the broker closed the channel while publishing");
            return -1;
        default:
            break;
        }
    }
}

static void copy_bytes(char *out, size_t size, amqp_bytes_t bytes) {
    size_t n = bytes.len < size - 1 ? bytes.len : size - 1;
    memcpy(out, bytes.bytes, n);
    out[n] = 0;
}

int fw_amqp_next(fw_amqp *amqp, int timeout_ms, char **body, size_t *length, uint64_t *delivery_tag, char *key,
                 size_t key_size, char *content_type, size_t content_type_size) {
    amqp_envelope_t envelope;
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_maybe_release_buffers(amqp->conn);
    amqp_rpc_reply_t reply = amqp_consume_message(amqp->conn, &envelope, &timeout, 0);
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) return 0;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        // A frame that is not a delivery (a heartbeat is handled inside; a basic.ack, a cancel).
        amqp_frame_t frame;
        struct timeval none = {0, 0};
        if (amqp_simple_wait_frame_noblock(amqp->conn, &frame, &none) == AMQP_STATUS_OK && frame.frame_type == AMQP_FRAME_METHOD) {
            if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
                snprintf(amqp->error, sizeof amqp->error, "the broker closed or cancelled the consumer (method 0x%08X)",
                         frame.payload.method.id);
                return -1;
            }
        }
        return 0;
    }
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        set_error(amqp->error, sizeof amqp->error, "basic.consume", reply);
        return -1;
    }
    *length = envelope.message.body.len;
    *body = malloc(envelope.message.body.len + 1);
    if (*body) {
        memcpy(*body, envelope.message.body.bytes, envelope.message.body.len);
        (*body)[envelope.message.body.len] = 0;
    }
    *delivery_tag = envelope.delivery_tag;
    copy_bytes(key, key_size, envelope.routing_key);
    content_type[0] = 0;
    if (envelope.message.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        copy_bytes(content_type, content_type_size, envelope.message.properties.content_type);
    amqp_destroy_envelope(&envelope);
    return *body ? 1 : -1;
}

int fw_amqp_ack(fw_amqp *amqp, uint64_t delivery_tag) {
    return check_status(amqp, amqp_basic_ack(amqp->conn, 1, delivery_tag, 0), "basic.ack");
}

int fw_amqp_reject(fw_amqp *amqp, uint64_t delivery_tag) {
    return check_status(amqp, amqp_basic_reject(amqp->conn, 1, delivery_tag, 0), "basic.reject");
}
