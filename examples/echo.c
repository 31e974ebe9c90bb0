/*
 * weft-echo: a TCP echo server, one task per connection.
 *
 *   weft-echo [--port P] [--host H] [--workers N]
 *
 * Echoes what each client sends (4 KiB buffer) until the client closes;
 * SIGINT or SIGTERM shut it down gracefully (server.h).
 */
#include <stdint.h>

#include "server.h"

static void *connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;
	while ((n = weft_recv(fd, buf, sizeof buf, 0)) > 0)
		if (weft_send_all(fd, buf, (size_t)n) != n)
			break;
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
