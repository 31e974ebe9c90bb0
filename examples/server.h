/*
 * What the example servers share: command-line options, the listener, the
 * accept loop (one detached task per connection), and graceful shutdown on
 * SIGINT/SIGTERM -- a signal closes the listener, which ends the accept
 * loop; the runtime's shutdown then cancels the connection tasks, whose
 * pending calls return -ECANCELED, and each closes its socket.
 */
#ifndef WEFT_EXAMPLES_SERVER_H
#define WEFT_EXAMPLES_SERVER_H

#include <stdint.h>
#include <stdio.h>

#include <weft.h>

struct example_server {
	const char *name;  /* for messages: "weft-echo" */
	const char *about; /* one line for --help */
	const char *host;
	uint16_t port;
	weft_fn connection; /* runs per accepted socket, (void *)(intptr_t)fd; closes it */
	weft_config cfg;
	/* Optional: the server's own options. option() looks at argv[i] and
	   returns how many arguments it took (0: not one of its own); help is
	   their lines for --help. */
	int (*option)(int argc, char **argv, int i);
	const char *help;
	/* Optional: run in the runtime before listening (0, else the exit
	   status) and after the accept loop ended. */
	int (*start)(void);
	void (*stop)(void);
};

/* Parses --port, --host, --workers and --help into s (defaults already
   set); returns -1 to continue, else the exit status main returns. */
int example_parse_args(struct example_server *s, int argc, char **argv);

/* Listens, prints "NAME listening on HOST:PORT" (the real port when 0 was
   asked for), serves until SIGINT/SIGTERM; main's exit status. */
int example_serve(struct example_server *s);

#endif
