/*
 * idle-client: opens N TCP connections to 127.0.0.1:PORT, makes one 64-byte
 * echo round trip on each (so every server-side handler has run and is
 * waiting in its next receive), prints "ready N" and holds them open until
 * stdin closes. benches/idle_rss.sh reads the server's RSS meanwhile.
 *
 *   idle-client PORT N
 *
 * A plain epoll client, independent of weft. Raises its soft RLIMIT_NOFILE
 * to the hard limit first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 256 /* connections opened and echoed at a time */

static int connect_one(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		fprintf(stderr, "idle-client: connect: %s\n", strerror(errno));
		exit(1);
	}
	return fd;
}

static void round_trip(int fd)
{
	char msg[64], back[64];
	memset(msg, 'x', sizeof msg);
	if (send(fd, msg, sizeof msg, 0) != (ssize_t)sizeof msg) {
		perror("idle-client: send");
		exit(1);
	}
	size_t got = 0;
	while (got < sizeof back) {
		ssize_t n = recv(fd, back + got, sizeof back - got, 0);
		if (n <= 0) {
			fprintf(stderr, "idle-client: recv: %s\n", n ? strerror(errno) : "EOF");
			exit(1);
		}
		got += (size_t)n;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: idle-client PORT N\n");
		return 2;
	}
	uint16_t port = (uint16_t)atoi(argv[1]);
	int n = atoi(argv[2]);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int *fds = calloc((size_t)n, sizeof *fds);
	if (!fds)
		return 1;
	for (int i = 0; i < n; i++)
		fds[i] = connect_one(port);
	for (int i = 0; i < n; i++)
		round_trip(fds[i]);
	printf("ready %d\n", n);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0) {
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}
