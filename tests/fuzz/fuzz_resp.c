/*
 * Fuzz target for weft-redis's RESP parser (examples/redis/resp.c) and its
 * glob matcher (db.c), for libFuzzer (make fuzz) or the replay driver
 * (replay.c, run on the corpus by CTest).
 *
 * The input is parsed request by request as a connection would see it,
 * first whole, then fed in two pieces at every 97th split point (a
 * request that needs more bytes must parse the same once they came).
 * Every parsed request is encoded again as a multibulk and parsed back:
 * it must give the same arguments. And when a parse says how many bytes
 * to wait for, fewer than that must still parse as incomplete. The input's first line, split at its
 * first NUL, is also a glob pattern and a string to match.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/redis/db.h"
#include "examples/redis/resp.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

/* Parses every request in buf; returns how many bytes that took (the rest
   is an incomplete request, or the protocol error at it). */
static size_t parse_all(const char *buf, size_t len, struct resp_request *req, int *status)
{
	size_t pos = 0;
	for (;;) {
		size_t used = 0, need = 0;
		const char *error = NULL;
		enum resp_status st = resp_parse(buf + pos, len - pos, req, &used, &need, &error);
		*status = st;
		if (st != RESP_OK)
			return pos;
		CHECK(used > 0 && used <= len - pos);
		for (size_t i = 0; i < req->argc; i++)
			CHECK(req->argv[i].len <= RESP_MAX_BULK);
		/* Round trip. */
		struct resp_out o = {0};
		resp_add_array(&o, (long long)req->argc);
		for (size_t i = 0; i < req->argc; i++)
			resp_add_bulk(&o, req->argv[i].p, req->argv[i].len);
		if (!o.failed && req->argc > 0) {
			struct resp_request again = {0};
			size_t used2 = 0;
			const char *e2 = NULL;
			CHECK(resp_parse(o.data, o.len, &again, &used2, NULL, &e2) == RESP_OK);
			CHECK(used2 == o.len && again.argc == req->argc);
			for (size_t i = 0; i < req->argc; i++)
				CHECK(again.argv[i].len == req->argv[i].len &&
				      !memcmp(again.argv[i].p, req->argv[i].p, req->argv[i].len));
			resp_request_free(&again);
		}
		resp_out_free(&o);
		pos += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct resp_request req = {0};
	int whole_status;
	size_t whole = parse_all(buf, size, &req, &whole_status);
	/* The same bytes arriving in two reads: what the first read completes
	   parses alike, and all of it, once there, gets as far as before. */
	for (size_t cut = 1; cut < size; cut += 97) {
		int st;
		size_t first = parse_all(buf, cut, &req, &st);
		CHECK(first <= whole || whole_status == RESP_ERROR);
		size_t rest = parse_all(buf + first, size - first, &req, &st);
		CHECK(first + rest == whole || whole_status == RESP_ERROR);
	}
	/* need is a promise: with fewer bytes than it says, the request is
	   still incomplete -- never an error or a request the reader would
	   have waited past. */
	for (size_t cut = 0; cut < size; cut += 13) {
		size_t used = 0, need = 0;
		const char *error = NULL;
		if (resp_parse(buf, cut, &req, &used, &need, &error) != RESP_MORE)
			continue;
		CHECK(need > cut);
		if (need - 1 > cut && need - 1 <= size)
			CHECK(resp_parse(buf, need - 1, &req, &used, NULL, &error) == RESP_MORE);
	}
	resp_request_free(&req);

	const char *nl = memchr(buf, '\n', size);
	size_t line = nl ? (size_t)(nl - buf) : size;
	const char *nul = memchr(buf, '\0', line);
	if (nul && line < 4096) {
		size_t plen = (size_t)(nul - buf);
		db_glob_match(buf, plen, nul + 1, line - plen - 1, false);
		db_glob_match(buf, plen, nul + 1, line - plen - 1, true);
	}
	long long v;
	if (resp_parse_ll(buf, size < 32 ? size : 32, &v) == 0) {
		char back[32];
		int n = snprintf(back, sizeof back, "%lld", v);
		CHECK((size_t)n == (size < 32 ? size : 32) && !memcmp(back, buf, (size_t)n));
	}
	return 0;
}
