/*
 * weft-redis's protocol pieces on their own: the RESP parser (complete,
 * partial and malformed requests, with Redis's messages), integers as
 * Redis reads them, glob matching as KEYS and PSUBSCRIBE use it, and the
 * reply encoder. The server as a whole is tests/example_redis.sh.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "examples/redis/db.h"
#include "examples/redis/resp.h"

static enum resp_status parse(const char *s, struct resp_request *r, size_t *used,
                              const char **error)
{
	size_t need;
	return resp_parse(s, strlen(s), r, used, &need, error);
}

static bool arg_eq(const struct resp_request *r, size_t i, const char *s)
{
	return i < r->argc && r->argv[i].len == strlen(s) && !memcmp(r->argv[i].p, s, strlen(s));
}

Test(resp, a_multibulk_request_and_the_bytes_it_used)
{
	struct resp_request r = {0};
	size_t used;
	const char *err;
	const char *s = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
	cr_assert_eq(parse(s, &r, &used, &err), RESP_OK);
	cr_assert_eq(r.argc, 2);
	cr_assert(arg_eq(&r, 0, "GET") && arg_eq(&r, 1, "k"));
	cr_assert_eq(used, strlen("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
	cr_assert_eq(parse(s + used, &r, &used, &err), RESP_OK);
	cr_assert(arg_eq(&r, 0, "PING"));
	resp_request_free(&r);
}

Test(resp, a_request_cut_anywhere_needs_more_and_a_big_bulk_says_how_much)
{
	const char *s = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
	struct resp_request r = {0};
	for (size_t cut = 0; cut < strlen(s); cut++) {
		size_t used, need;
		const char *err;
		cr_assert_eq(resp_parse(s, cut, &r, &used, &need, &err), RESP_MORE, "cut at %zu",
		             cut);
		cr_assert_gt(need, cut);
	}
	size_t used, need;
	const char *err;
	/* Before a bulk's payload, the next byte may be an error ("*1\r\nx"):
	   it must be parsed as soon as it comes. */
	cr_assert_eq(resp_parse("*1\r\n", 4, &r, &used, &need, &err), RESP_MORE);
	cr_assert_eq(need, 5);
	const char *big = "*1\r\n$100000\r\nabc";
	cr_assert_eq(resp_parse(big, strlen(big), &r, &used, &need, &err), RESP_MORE);
	cr_assert_eq(need, strlen("*1\r\n$100000\r\n") + 100000 + 2, "need %zu", need);
	resp_request_free(&r);
}

static void expect_error(const char *s, const char *want)
{
	struct resp_request r = {0};
	size_t used;
	const char *err = NULL;
	cr_assert_eq(parse(s, &r, &used, &err), RESP_ERROR, "%s", s);
	cr_assert_str_eq(err, want);
	resp_request_free(&r);
}

Test(resp, malformed_requests_get_redis_messages)
{
	expect_error("*x\r\n", "Protocol error: invalid multibulk length");
	expect_error("*2147483648\r\n", "Protocol error: invalid multibulk length");
	expect_error("*1\r\n:3\r\n", "Protocol error: expected '$', got ':'");
	expect_error("*1\r\n$-1\r\n", "Protocol error: invalid bulk length");
	expect_error("*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"); /* > 512 MB */
	expect_error("SET \"a\r\n", "Protocol error: unbalanced quotes in request");
	expect_error("SET \"a\"b\r\n", "Protocol error: unbalanced quotes in request");
	char line[70001];
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	expect_error(line, "Protocol error: too big inline request");
}

Test(resp, a_512_mb_bulk_is_accepted_as_a_length)
{
	struct resp_request r = {0};
	size_t used, need;
	const char *err;
	const char *s = "*1\r\n$536870912\r\n";
	cr_assert_eq(resp_parse(s, strlen(s), &r, &used, &need, &err), RESP_MORE);
	resp_request_free(&r);
}

Test(resp, inline_requests_split_and_unquote_as_redis_does)
{
	struct resp_request r = {0};
	size_t used;
	const char *err;
	cr_assert_eq(parse("  SET \"a b\\x41\\n\" 'it\\'s'   x\r\n", &r, &used, &err), RESP_OK);
	cr_assert_eq(r.argc, 4);
	cr_assert(arg_eq(&r, 0, "SET") && arg_eq(&r, 1, "a bA\n") && arg_eq(&r, 2, "it's") &&
	          arg_eq(&r, 3, "x"));
	cr_assert_eq(parse("\r\n", &r, &used, &err), RESP_OK);
	cr_assert_eq(r.argc, 0, "an empty line is an empty request");
	/* A NUL hides the newline from Redis (strchr): more is needed. */
	cr_assert_eq(resp_parse("a\0b\n", 4, &r, &used, NULL, &err), RESP_MORE);
	resp_request_free(&r);
}

Test(resp, integers_are_strict)
{
	long long v;
	cr_assert_eq(resp_parse_ll("-9223372036854775808", 20, &v), 0);
	cr_assert_eq(v, LLONG_MIN);
	cr_assert_eq(resp_parse_ll("9223372036854775807", 19, &v), 0);
	cr_assert_eq(v, LLONG_MAX);
	const char *bad[] = {"", "-", "+1", " 1", "01", "-0", "9223372036854775808", "1a", "1.0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(resp_parse_ll(bad[i], strlen(bad[i]), &v), -1, "'%s'", bad[i]);
}

static bool glob(const char *p, const char *s)
{
	return db_glob_match(p, strlen(p), s, strlen(s), false);
}

Test(resp, glob_patterns_match_as_keys_does)
{
	cr_assert(glob("*", ""));
	cr_assert(glob("h?llo", "hello") && !glob("h?llo", "hllo"));
	cr_assert(glob("h*llo", "heeeello") && glob("h*llo", "hllo"));
	cr_assert(glob("h[ae]llo", "hallo") && !glob("h[ae]llo", "hillo"));
	cr_assert(glob("h[^e]llo", "hallo") && !glob("h[^e]llo", "hello"));
	cr_assert(glob("h[a-b]llo", "hbllo") && !glob("h[a-b]llo", "hcllo"));
	cr_assert(glob("a\\*b", "a*b") && !glob("a\\*b", "axb"));
	cr_assert(glob("*a*b*c*", "xxaxxbxxcxx") && !glob("*a*b*c*", "xxaxxcxxbxx"));
	cr_assert(db_glob_match("A*", 2, "abc", 3, true) && !glob("A*", "abc"));
	/* A hostile pattern takes polynomial time, not a deep recursion. */
	static char p[20001], s[20001];
	for (int i = 0; i < 20000; i += 2)
		p[i] = '*', p[i + 1] = 'a';
	memset(s, 'a', 20000);
	cr_assert(db_glob_match(p, 20000, s, 20000, false));
}

Test(resp, replies_encode_as_resp2)
{
	struct resp_out o = {0};
	resp_add_simple(&o, "OK");
	resp_add_error(&o, "ERR bad\r\nthing");
	resp_add_int(&o, -42);
	resp_add_bulk(&o, "ab", 2);
	resp_add_null(&o);
	resp_add_array(&o, 2);
	const char *want = "+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nab\r\n$-1\r\n*2\r\n";
	cr_assert_eq(o.len, strlen(want));
	cr_assert_eq(memcmp(o.data, want, o.len), 0, "%.*s", (int)o.len, o.data);
	resp_out_free(&o);
}
