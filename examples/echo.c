/*
 * weft-echo: a TCP echo server, one task per connection.
 *
 *   weft-echo [--port P] [--host H] [--workers N]
 *
 * Echoes what each client sends until the client closes; SIGINT or
 * SIGTERM shut it down gracefully (server.h). Each receive borrows a 4 KiB
 * buffer from the runtime (weft_recv_buf) and gives it back once the bytes
 * went out, so an idle connection holds no buffer: 10,000 of them cost
 * about a stack page each.
 */
#include <stdint.h>

#include "server.h"

static void *connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	weft_buf b;
	ssize_t n;
	while ((n = weft_recv_buf(fd, &b)) > 0) {
		ssize_t sent = weft_send_all(fd, b.data, (size_t)n);
		weft_buf_release(&b);
		if (sent != n)
			break;
	}
	weft_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct example_server s = {
	        .name = "weft-echo",
	        .about = "TCP echo server (4 KiB buffer), one task per connection.",
	        .host = "127.0.0.1",
	        .port = 7001,
	        .connection = connection,
	};
	weft_config_init(&s.cfg);
	int rc = example_parse_args(&s, argc, argv);
	return rc >= 0 ? rc : example_serve(&s);
}
