// librabbitmq (rabbitmq-c), Debian's librabbitmq-dev: the AMQP 0-9-1 client under the RabbitMQ transport.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
