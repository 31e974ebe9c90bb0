/*
 * RESP2, the Redis protocol: parsing requests and building replies.
 *
 * A request is either a multibulk array of bulk strings (what every client
 * library and redis-cli send) or an inline command (a line of words, what
 * a person types into telnet). resp_parse takes one request from the front
 * of a buffer, or says that more bytes are needed, or gives the protocol
 * error real Redis gives for the same bytes (after which the connection is
 * closed, as Redis does). The arguments point into the buffer: they are
 * valid until the buffer changes.
 *
 * Limits are Redis 7's: a count of at most INT_MAX arguments (taken as they
 * arrive, not allocated up front), a bulk string of at most 512 MB, an
 * inline request or a count line of at most 64 KiB.
 */
#ifndef WEFT_REDIS_RESP_H
#define WEFT_REDIS_RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_BULK (512ll * 1024 * 1024)
#define RESP_MAX_INLINE (64 * 1024)

struct resp_arg {
	const char *p;
	size_t len;
};

/* A request's arguments. Inline ones are unquoted into `scratch`. */
struct resp_request {
	struct resp_arg *argv;
	size_t argc, cap;
	char *scratch;
	size_t scratch_cap;
};

enum resp_status {
	RESP_OK,    /* one request parsed (argc may be 0: an empty one, skip it) */
	RESP_MORE,  /* incomplete: read more and parse again from the same place */
	RESP_ERROR, /* a protocol error: reply `error` and close */
	RESP_NOMEM,
};

/* Parses one request from buf[0, len). On RESP_OK, *used is how many bytes
   it took. On RESP_ERROR, *error is Redis's message (without "-ERR "). On
   RESP_MORE, *need (if not NULL) is how many bytes to wait for before
   parsing again: one more than now, except inside a bulk string's payload,
   where it is the whole request's length (so that a reader grows its
   buffer once, and does not parse a large value again per read). */
enum resp_status resp_parse(const char *buf, size_t len, struct resp_request *req, size_t *used,
                            size_t *need, const char **error);

void resp_request_free(struct resp_request *req);

/* An output buffer for replies. Appending never fails: out of memory, the
   buffer is marked failed and the connection should be closed. */
struct resp_out {
	char *data;
	size_t len, cap;
	int failed;
};

void resp_out_free(struct resp_out *o);
void resp_add_raw(struct resp_out *o, const void *p, size_t len);
void resp_add_simple(struct resp_out *o, const char *s);  /* +s */
void resp_add_error(struct resp_out *o, const char *msg); /* -msg (newlines made spaces) */
void resp_add_errorf(struct resp_out *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void resp_add_int(struct resp_out *o, long long v);
void resp_add_bulk(struct resp_out *o, const void *p, size_t len);
void resp_add_cstr(struct resp_out *o, const char *s); /* as a bulk string */
void resp_add_null(struct resp_out *o);                /* the null bulk string */
void resp_add_array(struct resp_out *o, long long n);  /* *n; -1: the null array */

/* Strict decimal integers as Redis reads them: optional '-', no '+', no
   spaces, no leading zeros; in range of long long. 0 or -1. */
int resp_parse_ll(const char *p, size_t len, long long *out);

#endif
