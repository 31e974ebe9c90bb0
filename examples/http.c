/*
 * weft-http: a minimal HTTP/1.1 keep-alive server answering "Hello, World!",
 * one task per connection.
 *
 *   weft-http [--port P] [--host H] [--workers N] [--metrics]
 *
 * With --metrics, GET /metrics answers with the runtime's metrics in
 * Prometheus text format (weft_metrics_prometheus).
 *
 * Parsing is as minimal as ../shared/peers' tokio-http, so the two do the
 * same work: a request ends at CRLFCRLF (no bodies), pipelined requests are
 * answered together in one write. Unlike it, a request that is not
 * HTTP/1.x -- a malformed request line, a header line without a colon,
 * control bytes -- or whose head outgrows the 8 KiB buffer gets a 400 and
 * the connection is closed. A client that disconnects mid-request costs
 * its task's recv returning 0 and nothing else.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server.h"

#define HEAD_MAX 8192
#define OUT_MAX 4096

static const char OK[] = "HTTP/1.1 200 OK\r\nServer: weft-http\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 13\r\n\r\nHello, World!";
static const char BAD[] = "HTTP/1.1 400 Bad Request\r\nServer: weft-http\r\n"
                          "Content-Type: text/plain\r\nContent-Length: 12\r\n"
                          "Connection: close\r\n\r\nBad Request\n";

static bool serve_metrics;

/* Sends the runtime's metrics as one response: rendered into a memfd,
   then sent with its length. False when the connection failed. */
static bool send_metrics(int fd)
{
	int mfd = memfd_create("weft-metrics", MFD_CLOEXEC);
	if (mfd < 0)
		return weft_send_all(fd, BAD, sizeof BAD - 1) == (ssize_t)(sizeof BAD - 1);
	bool ok = false;
	off_t len;
	char *body = NULL;
	if (weft_metrics_prometheus(weft_runtime_current(), mfd) == 0 &&
	    (len = lseek(mfd, 0, SEEK_END)) > 0 && (body = malloc((size_t)len)) &&
	    pread(mfd, body, (size_t)len, 0) == len) {
		char head[256];
		int hl = snprintf(head, sizeof head,
		                  "HTTP/1.1 200 OK\r\nServer: weft-http\r\n"
		                  "Content-Type: text/plain; version=0.0.4\r\n"
		                  "Content-Length: %lld\r\n\r\n",
		                  (long long)len);
		ok = weft_send_all(fd, head, (size_t)hl) == hl &&
		     weft_send_all(fd, body, (size_t)len) == (ssize_t)len;
	}
	free(body);
	close(mfd);
	return ok;
}

static bool is_metrics_request(const char *p, const char *end)
{
	static const char GET[] = "GET /metrics ";
	return serve_metrics && (size_t)(end - p) > sizeof GET - 1 &&
	       !memcmp(p, GET, sizeof GET - 1);
}

/* "METHOD SP target SP HTTP/1.d" */
static bool request_line_ok(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && isupper((unsigned char)*q))
		q++;
	if (q == p || q - p > 16 || q == end || *q++ != ' ')
		return false;
	const char *target = q;
	while (q<end && * q> ' ' && *q < 0x7f)
		q++;
	if (q == target || q == end || *q++ != ' ')
		return false;
	return end - q == 8 && !memcmp(q, "HTTP/1.", 7) && isdigit((unsigned char)q[7]);
}

/* A request head [p, end) without its final CRLFCRLF. */
static bool head_ok(const char *p, const char *end)
{
	const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
	if (!request_line_ok(p, eol ? eol : end))
		return false;
	while (eol) {
		const char *line = eol + 2;
		eol = memmem(line, (size_t)(end - line), "\r\n", 2);
		const char *stop = eol ? eol : end;
		if (!memchr(line, ':', (size_t)(stop - line)))
			return false;
		for (const char *c = line; c < stop; c++)
			if ((unsigned char)*c < ' ' && *c != '\t')
				return false;
	}
	return true;
}

static void *connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[HEAD_MAX], out[OUT_MAX];
	size_t len = 0, scanned = 0, olen = 0;
	for (;;) {
		if (len == sizeof buf) {
			weft_send_all(fd, BAD, sizeof BAD - 1); /* head too large */
			break;
		}
		ssize_t n = weft_recv(fd, buf + len, sizeof buf - len, 0);
		if (n <= 0)
			break; /* the client left (or shutdown cancelled us) */
		len += (size_t)n;
		size_t start = 0;
		bool bad = false;
		for (;;) {
			size_t from = scanned > start + 3 ? scanned - 3 : start;
			char *end = memmem(buf + from, len - from, "\r\n\r\n", 4);
			if (!end)
				break;
			if (!head_ok(buf + start, end)) {
				bad = true;
				break;
			}
			if (is_metrics_request(buf + start, end)) {
				if ((olen && weft_send_all(fd, out, olen) != (ssize_t)olen) ||
				    !send_metrics(fd))
					goto done;
				olen = 0;
				start = (size_t)(end - buf) + 4;
				scanned = start;
				continue;
			}
			if (olen + sizeof OK - 1 > sizeof out) {
				if (weft_send_all(fd, out, olen) != (ssize_t)olen)
					goto done;
				olen = 0;
			}
			memcpy(out + olen, OK, sizeof OK - 1);
			olen += sizeof OK - 1;
			start = (size_t)(end - buf) + 4;
			scanned = start;
		}
		if (bad) {
			if (olen == 0 || weft_send_all(fd, out, olen) == (ssize_t)olen)
				weft_send_all(fd, BAD, sizeof BAD - 1);
			break;
		}
		if (start > 0) {
			memmove(buf, buf + start, len - start);
			len -= start;
		}
		scanned = len;
		if (olen) {
			if (weft_send_all(fd, out, olen) != (ssize_t)olen)
				break;
			olen = 0;
		}
	}
done:
	weft_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct example_server s = {
	        .name = "weft-http",
	        .about =
	                "HTTP/1.1 keep-alive server answering Hello, World! (400 on bad requests); "
	                "--metrics: GET /metrics answers with the runtime's Prometheus metrics.",
	        .host = "127.0.0.1",
	        .port = 7002,
	        .connection = connection,
	};
	weft_config_init(&s.cfg);
	int n = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--metrics"))
			serve_metrics = true;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	int rc = example_parse_args(&s, argc, argv);
	return rc >= 0 ? rc : example_serve(&s);
}
