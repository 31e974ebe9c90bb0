/*
 * weft-echo: a TCP echo server, one task per connection.
 *
 *   weft-echo [--port P] [--host H] [--workers N]
 *
 * Echoes what each client sends (4 KiB buffer) until the client closes.
 * SIGINT or SIGTERM shut it down gracefully: the listener closes, the
 * connection tasks are cancelled (their pending recv returns -ECANCELED),
 * each closes its socket, and the runtime shuts down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

struct server {
	const char *host;
	uint16_t port;
	int listener;
};

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

/* The listener, for the signal watchers: closing it ends the accept loop
   (-EBADF), which ends the program. */
static int listener_fd = -1;

static void *on_signal(void *arg)
{
	if (weft_signal_wait((int)(intptr_t)arg) == 0) {
		fprintf(stderr, "weft-echo: %s, shutting down\n", strsignal((int)(intptr_t)arg));
		weft_close(listener_fd);
	}
	return NULL;
}

static void *main_task(void *arg)
{
	struct server *s = arg;
	s->listener = weft_tcp_listen(s->host, s->port, 1024);
	if (s->listener < 0) {
		fprintf(stderr, "weft-echo: listen on %s:%u: %s\n", s->host, s->port,
		        strerror(-s->listener));
		return (void *)1;
	}
	listener_fd = s->listener;
	struct sockaddr_storage a;
	socklen_t alen = sizeof a;
	if (getsockname(s->listener, (struct sockaddr *)&a, &alen) == 0)
		s->port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
		                                        : ((struct sockaddr_in *)&a)->sin_port);
	weft_task *sig[2] = {weft_spawn(on_signal, (void *)(intptr_t)SIGINT),
	                     weft_spawn(on_signal, (void *)(intptr_t)SIGTERM)};
	fprintf(stderr, "weft-echo listening on %s:%u\n", s->host, s->port); /* the real port */
	for (;;) {
		int c = weft_accept(s->listener, NULL, NULL);
		if (c >= 0) {
			weft_detach(weft_spawn(connection, (void *)(intptr_t)c));
		} else if (c == -EMFILE || c == -ENFILE || c == -ENOMEM) {
			weft_sleep_ms(10); /* out of resources: keep serving the others */
		} else {
			break; /* -EBADF: closed by a signal */
		}
	}
	for (int i = 0; i < 2; i++) {
		weft_cancel(sig[i]);
		weft_join(sig[i], NULL);
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-echo [--port P] [--host H] [--workers N]\n"
	           "  TCP echo server (4 KiB buffer), one task per connection.\n"
	           "  --port P     port to listen on (default 7001; 0: any, printed)\n"
	           "  --host H     address to bind (default 127.0.0.1)\n"
	           "  --workers N  worker threads (default: one per CPU)\n"
	           "  SIGINT/SIGTERM shut it down gracefully.\n");
}

int main(int argc, char **argv)
{
	struct server s = {.host = "127.0.0.1", .port = 7001, .listener = -1};
	weft_config cfg;
	weft_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			s.port = (uint16_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			s.host = argv[++i];
		} else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			cfg.workers = (unsigned)atoi(argv[++i]);
		} else {
			usage(stderr);
			return 2;
		}
	}
	void *rc = NULL;
	int r = weft_run(main_task, &s, &cfg, &rc);
	if (r < 0) {
		fprintf(stderr, "weft-echo: %s\n", strerror(-r));
		return 1;
	}
	return rc ? 1 : 0;
}
