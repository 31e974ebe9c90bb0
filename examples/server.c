/*
 * The example servers' common skeleton; see server.h.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static int listener_fd = -1; /* for the signal watchers */
static const char *server_name;

static void *on_signal(void *arg)
{
	int signo = (int)(intptr_t)arg;
	if (weft_signal_wait(signo) == 0) {
		fprintf(stderr, "%s: %s, shutting down\n", server_name, strsignal(signo));
		weft_close(listener_fd); /* ends the accept loop with -EBADF */
	}
	return NULL;
}

static uint16_t bound_port(int fd, uint16_t asked)
{
	struct sockaddr_storage a;
	socklen_t alen = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		return asked;
	return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
	                                     : ((struct sockaddr_in *)&a)->sin_port);
}

static void *accept_loop(void *arg)
{
	struct example_server *s = arg;
	if (s->start && s->start() != 0)
		return (void *)1;
	int listener = weft_tcp_listen(s->host, s->port, 1024);
	if (listener < 0) {
		fprintf(stderr, "%s: listen on %s:%u: %s\n", s->name, s->host, s->port,
		        strerror(-listener));
		if (s->stop)
			s->stop();
		return (void *)1;
	}
	listener_fd = listener;
	weft_task *sig[2] = {weft_spawn(on_signal, (void *)(intptr_t)SIGINT),
	                     weft_spawn(on_signal, (void *)(intptr_t)SIGTERM)};
	fprintf(stderr, "%s listening on %s:%u\n", s->name, s->host, bound_port(listener, s->port));
	for (;;) {
		int c = weft_accept(listener, NULL, NULL);
		if (c >= 0) {
			int one = 1; /* answers go out at once, as the peers' do */
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			weft_task *t = weft_spawn(s->connection, (void *)(intptr_t)c);
			if (t)
				weft_detach(t);
			else
				weft_close(c);
		} else if (c == -EMFILE || c == -ENFILE || c == -ENOMEM || c == -ENOBUFS) {
			weft_sleep_ms(10); /* out of resources: keep serving the others */
		} else {
			break; /* -EBADF: closed by a signal */
		}
	}
	for (int i = 0; i < 2; i++) {
		weft_cancel(sig[i]);
		weft_join(sig[i], NULL);
	}
	if (s->stop)
		s->stop();
	return NULL;
}

static void usage(const struct example_server *s, FILE *f)
{
	fprintf(f,
	        "usage: %s [--port P] [--host H] [--workers N]\n"
	        "  %s\n"
	        "  --port P     port to listen on (default %u; 0: any, printed)\n"
	        "  --host H     address to bind (default 127.0.0.1)\n"
	        "  --workers N  worker threads (default: one per CPU)\n"
	        "%s"
	        "  SIGINT/SIGTERM shut it down gracefully. WEFT_IO=epoll|uring picks the\n"
	        "  I/O backend (default: io_uring where it works).\n",
	        s->name, s->about, s->port, s->help ? s->help : "");
}

int example_parse_args(struct example_server *s, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int used = s->option ? s->option(argc, argv, i) : 0;
		if (used > 0) {
			i += used - 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(s, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			s->port = (uint16_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			s->host = argv[++i];
		} else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			s->cfg.workers = (unsigned)atoi(argv[++i]);
		} else {
			usage(s, stderr);
			return 2;
		}
	}
	return -1;
}

int example_serve(struct example_server *s)
{
	server_name = s->name;
	void *rc = NULL;
	int r = weft_run(accept_loop, s, &s->cfg, &rc);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", s->name, strerror(-r));
		return 1;
	}
	return rc ? 1 : 0;
}
