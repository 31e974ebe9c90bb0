/*
 * RESP2 parsing and replies; see resp.h. The error messages and limits
 * follow Redis 7's networking.c (processMultibulkBuffer,
 * processInlineBuffer, sdssplitargs), so that a client sees the same
 * answer from weft-redis as from redis-server.
 */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- numbers */

int resp_parse_ll(const char *p, size_t len, long long *out)
{
	if (len == 0 || len > 20)
		return -1;
	size_t i = 0;
	bool neg = p[0] == '-';
	if (neg && ++i == len)
		return -1;
	if (p[i] == '0' && len - i > 1)
		return -1; /* no leading zeros ("-0" neither) */
	unsigned long long v = 0;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (unsigned long long)LLONG_MAX + 1)
			return -1;
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	} else {
		if (v > (unsigned long long)LLONG_MAX)
			return -1;
		*out = (long long)v;
	}
	if (neg && *out == 0)
		return -1;
	return 0;
}

/* --------------------------------------------------------------- requests */

static bool add_arg(struct resp_request *req, const char *p, size_t len)
{
	if (req->argc == req->cap) {
		size_t cap = req->cap ? 2 * req->cap : 8;
		struct resp_arg *a = realloc(req->argv, cap * sizeof *a);
		if (!a)
			return false;
		req->argv = a;
		req->cap = cap;
	}
	req->argv[req->argc++] = (struct resp_arg){p, len};
	return true;
}

/* Where c first occurs in p[0, len), as Redis finds it -- with strchr on
   its NUL-terminated buffer, so a NUL byte before it hides it: NULL. */
static const char *find_char(const char *p, size_t len, char c)
{
	const char *at = memchr(p, c, len);
	return at && !memchr(p, '\0', (size_t)(at - p)) ? at : NULL;
}

/* The line starting at p (up to "\r\n"), within len bytes: its length, or
   -1 when no "\r\n" is there yet. */
static long line_len(const char *p, size_t len)
{
	const char *cr = find_char(p, len, '\r');
	if (!cr || (size_t)(cr - p) + 1 >= len)
		return -1;
	return cr - p;
}

static enum resp_status parse_multibulk(const char *buf, size_t len, struct resp_request *req,
                                        size_t *used, size_t *need, const char **error)
{
	static char expected[64];
	long n = line_len(buf, len);
	if (n < 0) {
		if (len > RESP_MAX_INLINE) {
			*error = "Protocol error: too big mbulk count string";
			return RESP_ERROR;
		}
		return RESP_MORE;
	}
	long long count;
	if (resp_parse_ll(buf + 1, (size_t)n - 1, &count) < 0 || count > INT_MAX) {
		*error = "Protocol error: invalid multibulk length";
		return RESP_ERROR;
	}
	size_t pos = (size_t)n + 2;
	for (long long i = 0; i < count; i++) {
		if (pos >= len)
			return RESP_MORE; /* *need: one more byte, which may be an error */
		if (buf[pos] != '$') {
			snprintf(expected, sizeof expected,
			         "Protocol error: expected '$', got '%c'", buf[pos]);
			*error = expected;
			return RESP_ERROR;
		}
		n = line_len(buf + pos, len - pos);
		if (n < 0) {
			if (len - pos > RESP_MAX_INLINE) {
				*error = "Protocol error: too big bulk count string";
				return RESP_ERROR;
			}
			return RESP_MORE;
		}
		long long blen;
		if (resp_parse_ll(buf + pos + 1, (size_t)n - 1, &blen) < 0 || blen < 0 ||
		    blen > RESP_MAX_BULK) {
			*error = "Protocol error: invalid bulk length";
			return RESP_ERROR;
		}
		pos += (size_t)n + 2;
		if (len - pos < (size_t)blen + 2) {
			/* Only the payload is missing, and no payload byte can be an
			   error (Redis does not look at it): wait for all of it. */
			*need = pos + (size_t)blen + 2;
			return RESP_MORE;
		}
		if (!add_arg(req, buf + pos, (size_t)blen))
			return RESP_NOMEM;
		pos += (size_t)blen + 2; /* Redis does not look at the CRLF either */
	}
	*used = pos;
	return RESP_OK;
}

static int hex_digit(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* Splits a line into words as sdssplitargs does: blanks separate, "..."
   takes C escapes (\n \r \t \b \a \\ \" \xHH), '...' takes \' only, and a
   closing quote must be followed by a blank or the end. Words are
   unquoted into req->scratch. false: unbalanced quotes. */
static bool split_inline(const char *p, size_t len, struct resp_request *req)
{
	if (req->scratch_cap < len + 1) {
		char *s = realloc(req->scratch, len + 1);
		if (!s)
			return false;
		req->scratch = s;
		req->scratch_cap = len + 1;
	}
	char *out = req->scratch;
	size_t i = 0;
	for (;;) {
		while (i < len && isspace((unsigned char)p[i]))
			i++;
		if (i == len)
			return true;
		char *word = out;
		bool dq = false, sq = false, done = false;
		while (!done) {
			if (dq) {
				if (i == len)
					return false;
				if (p[i] == '\\' && i + 3 < len && p[i + 1] == 'x' &&
				    hex_digit(p[i + 2]) >= 0 && hex_digit(p[i + 3]) >= 0) {
					*out++ = (char)(hex_digit(p[i + 2]) * 16 +
					                hex_digit(p[i + 3]));
					i += 4;
				} else if (p[i] == '\\' && i + 1 < len) {
					char c = p[++i];
					*out++ = c == 'n'   ? '\n'
					         : c == 'r' ? '\r'
					         : c == 't' ? '\t'
					         : c == 'b' ? '\b'
					         : c == 'a' ? '\a'
					                    : c;
					i++;
				} else if (p[i] == '"') {
					if (i + 1 < len && !isspace((unsigned char)p[i + 1]))
						return false;
					i++;
					done = true;
				} else {
					*out++ = p[i++];
				}
			} else if (sq) {
				if (i == len)
					return false;
				if (p[i] == '\\' && i + 1 < len && p[i + 1] == '\'') {
					*out++ = '\'';
					i += 2;
				} else if (p[i] == '\'') {
					if (i + 1 < len && !isspace((unsigned char)p[i + 1]))
						return false;
					i++;
					done = true;
				} else {
					*out++ = p[i++];
				}
			} else if (i == len || isspace((unsigned char)p[i])) {
				done = true;
			} else if (p[i] == '"') {
				dq = true;
				i++;
			} else if (p[i] == '\'') {
				sq = true;
				i++;
			} else {
				*out++ = p[i++];
			}
		}
		if (!add_arg(req, word, (size_t)(out - word)))
			return false;
	}
}

static enum resp_status parse_inline(const char *buf, size_t len, struct resp_request *req,
                                     size_t *used, const char **error)
{
	const char *nl = find_char(buf, len, '\n');
	if (!nl) {
		if (len > RESP_MAX_INLINE) {
			*error = "Protocol error: too big inline request";
			return RESP_ERROR;
		}
		return RESP_MORE;
	}
	size_t line = (size_t)(nl - buf);
	*used = line + 1;
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	if (!split_inline(buf, line, req)) {
		req->argc = 0;
		*error = "Protocol error: unbalanced quotes in request";
		return RESP_ERROR;
	}
	return RESP_OK;
}

enum resp_status resp_parse(const char *buf, size_t len, struct resp_request *req, size_t *used,
                            size_t *need, const char **error)
{
	size_t ignored;
	req->argc = 0;
	if (!need)
		need = &ignored;
	*need = len + 1;
	if (len == 0)
		return RESP_MORE;
	return buf[0] == '*' ? parse_multibulk(buf, len, req, used, need, error)
	                     : parse_inline(buf, len, req, used, error);
}

void resp_request_free(struct resp_request *req)
{
	free(req->argv);
	free(req->scratch);
	memset(req, 0, sizeof *req);
}

/* ---------------------------------------------------------------- replies */

static bool reserve(struct resp_out *o, size_t more)
{
	if (o->failed)
		return false;
	if (o->cap - o->len >= more)
		return true;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap - o->len < more)
		cap *= 2;
	char *d = realloc(o->data, cap);
	if (!d) {
		o->failed = 1;
		return false;
	}
	o->data = d;
	o->cap = cap;
	return true;
}

void resp_out_free(struct resp_out *o)
{
	free(o->data);
	memset(o, 0, sizeof *o);
}

void resp_add_raw(struct resp_out *o, const void *p, size_t len)
{
	if (len == 0 || !reserve(o, len)) /* (p may be NULL then: an empty buffer's data) */
		return;
	memcpy(o->data + o->len, p, len);
	o->len += len;
}

static void add_line(struct resp_out *o, char type, const char *s, size_t len)
{
	if (!reserve(o, len + 3))
		return;
	o->data[o->len++] = type;
	memcpy(o->data + o->len, s, len);
	o->len += len;
	o->data[o->len++] = '\r';
	o->data[o->len++] = '\n';
}

void resp_add_simple(struct resp_out *o, const char *s)
{
	add_line(o, '+', s, strlen(s));
}

void resp_add_error(struct resp_out *o, const char *msg)
{
	size_t start = o->len + 1, len = strlen(msg);
	add_line(o, '-', msg, len);
	if (o->failed)
		return;
	for (size_t i = start; i < start + len; i++)
		if (o->data[i] == '\r' || o->data[i] == '\n')
			o->data[i] = ' '; /* as addReplyErrorLength does */
}

void resp_add_errorf(struct resp_out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	resp_add_error(o, buf);
}

static void add_number(struct resp_out *o, char type, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%lld", v);
	add_line(o, type, buf, (size_t)n);
}

void resp_add_int(struct resp_out *o, long long v)
{
	add_number(o, ':', v);
}

void resp_add_array(struct resp_out *o, long long n)
{
	add_number(o, '*', n);
}

void resp_add_bulk(struct resp_out *o, const void *p, size_t len)
{
	add_number(o, '$', (long long)len);
	if (!reserve(o, len + 2))
		return;
	memcpy(o->data + o->len, p, len);
	o->len += len;
	o->data[o->len++] = '\r';
	o->data[o->len++] = '\n';
}

void resp_add_cstr(struct resp_out *o, const char *s)
{
	resp_add_bulk(o, s, strlen(s));
}

void resp_add_null(struct resp_out *o)
{
	resp_add_raw(o, "$-1\r\n", 5);
}
