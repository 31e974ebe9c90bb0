/*
 * A growable text buffer (internal) for the reports that are formatted
 * first and written after -- the task dump formats under the registry's
 * locks and must not write while holding them; the metrics exposition uses
 * the same so that a reader gets it in one piece. Out of memory drops
 * lines and says so (truncated); writing retries EINTR and short writes.
 */
#ifndef WEFT_RUNTIME_TEXTBUF_H
#define WEFT_RUNTIME_TEXTBUF_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct weft__textbuf {
	char *buf;
	size_t len, cap;
	bool truncated;
};

static inline void weft__textbuf_printf(struct weft__textbuf *t, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static inline void weft__textbuf_printf(struct weft__textbuf *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (t->len + len > t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16384;
		while (cap < t->len + len)
			cap *= 2;
		char *nb = realloc(t->buf, cap);
		if (!nb) {
			t->truncated = true;
			return;
		}
		t->buf = nb;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, line, len);
	t->len += len;
}

/* Writes the text to fd and frees it: 0 or -errno. */
static inline int weft__textbuf_write(struct weft__textbuf *t, int fd)
{
	int rc = 0;
	for (size_t off = 0; off < t->len;) {
		ssize_t n = write(fd, t->buf + off, t->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	free(t->buf);
	*t = (struct weft__textbuf){0};
	return rc;
}

#endif
