/*
 * weft-redis: a Redis-compatible server (RESP2) that stock Redis clients
 * talk to -- redis-cli, redis-benchmark, any client library.
 *
 *   weft-redis [--port P] [--host H] [--workers N] [--shards N]
 *
 * One task per connection reads what the client sent, runs every complete
 * command in it (a pipeline is answered in one write), and writes the
 * replies. The keyspace is sharded behind weft mutexes (db.h), keys expire
 * through weft timers, pub/sub goes through weft channels (pubsub.h).
 * SIGINT/SIGTERM: the listener closes, every connection answers what it
 * has already read, and closes.
 *
 * Commands: PING ECHO GET SET (EX PX NX XX KEEPTTL GET) DEL EXISTS INCR
 * DECR INCRBY DECRBY EXPIRE PEXPIRE TTL PTTL MGET MSET KEYS DBSIZE FLUSHALL
 * FLUSHDB PUBLISH SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE QUIT
 * COMMAND CLIENT (SETNAME GETNAME ID) SELECT 0 CONFIG GET (for
 * redis-benchmark). Errors read as Redis 7's do.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../server.h"
#include "db.h"
#include "pubsub.h"
#include "resp.h"

#define READ_CHUNK (16 * 1024)
#define FLUSH_AT (64 * 1024)               /* replies buffered before a write mid-pipeline */
#define QUERY_LIMIT (1024ll * 1024 * 1024) /* a client's unparsed input (Redis: 1 GB) */

static struct db *db;
static struct pubsub *ps;
static unsigned nshards = 64;

/* ------------------------------------------------------------ connections */

#define STOP_GRACE_MS 5000 /* how long shutdown waits for clients to take their replies */

struct client {
	struct sub_client sub; /* fd, outbox */
	struct resp_out out;
	weft_task *task;
	long long id;
	char name[64];
	bool quit;      /* close after the replies */
	bool bad_input; /* a protocol error: close, lingering (linger_close) */
	bool fd_closed; /* under conns_lock: shutdown must not touch the fd */
};

/* Live connections, so that shutdown can ask each to finish. */
static weft_mutex conns_lock = WEFT_MUTEX_INIT;
static weft_notify conns_gone;
static struct client **conns;
static size_t nconns, cap_conns;
static bool stopping;
static _Atomic long long next_client_id = 1;

static bool register_conn(struct client *c)
{
	weft_mutex_lock(&conns_lock);
	bool ok = !stopping;
	if (ok && nconns == cap_conns) {
		size_t cap = cap_conns ? 2 * cap_conns : 64;
		struct client **grown = realloc(conns, cap * sizeof *grown);
		ok = grown != NULL;
		if (ok) {
			conns = grown;
			cap_conns = cap;
		}
	}
	if (ok) {
		c->task = weft_current();
		conns[nconns++] = c;
	}
	weft_mutex_unlock(&conns_lock);
	return ok;
}

static void mark_fd_closed(struct client *c)
{
	weft_shield_push();
	weft_mutex_lock(&conns_lock);
	c->fd_closed = true;
	weft_mutex_unlock(&conns_lock);
	weft_shield_pop();
}

static void unregister_conn(struct client *c)
{
	weft_shield_push();
	weft_mutex_lock(&conns_lock);
	for (size_t i = 0; i < nconns; i++)
		if (conns[i] == c) {
			conns[i] = conns[--nconns];
			break;
		}
	if (nconns == 0)
		weft_notify_one(&conns_gone); /* a permit if stop() is not waiting yet */
	weft_mutex_unlock(&conns_lock);
	weft_shield_pop();
}

/* ---------------------------------------------------------------- helpers */

static bool arg_is(const struct resp_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && !strncasecmp(a->p, s, n);
}

static void lower_name(const struct resp_arg *a, char *buf, size_t cap)
{
	size_t n = a->len < cap - 1 ? a->len : cap - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(a->p[i] >= 'A' && a->p[i] <= 'Z' ? a->p[i] + 32 : a->p[i]);
	buf[n] = '\0';
}

static void wrong_args(struct client *c, const struct resp_arg *cmd)
{
	char name[64];
	lower_name(cmd, name, sizeof name);
	resp_add_errorf(&c->out, "ERR wrong number of arguments for '%s' command", name);
}

static void not_integer(struct client *c)
{
	resp_add_error(&c->out, "ERR value is not an integer or out of range");
}

/* "unknown command 'x', with args beginning with: 'a' 'b' ", at most 128
   characters of each, as Redis writes it. */
static void unknown_command(struct client *c, const struct resp_request *r)
{
	char args[256] = "";
	size_t alen = 0;
	for (size_t i = 1; i < r->argc && alen < 128; i++) {
		size_t room = 128 - alen, n = r->argv[i].len < room ? r->argv[i].len : room;
		alen += (size_t)snprintf(args + alen, sizeof args - alen, "'%.*s' ", (int)n,
		                         r->argv[i].p);
	}
	resp_add_errorf(&c->out, "ERR unknown command '%.*s', with args beginning with: %s",
	                (int)(r->argv[0].len < 128 ? r->argv[0].len : 128), r->argv[0].p, args);
}

/* ---------------------------------------------------------------- strings */

static void cmd_get(struct client *c, const struct resp_request *r)
{
	db_get(db, &r->argv[1], &c->out);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL] */
static void cmd_set(struct client *c, const struct resp_request *r)
{
	enum db_set_cond cond = DB_SET_ALWAYS;
	int64_t expire_at = 0;
	bool has_expire = false, keepttl = false, get = false;
	for (size_t i = 3; i < r->argc; i++) {
		const struct resp_arg *a = &r->argv[i];
		bool has_next = i + 1 < r->argc;
		if (arg_is(a, "NX") && cond != DB_SET_XX) {
			cond = DB_SET_NX;
		} else if (arg_is(a, "XX") && cond != DB_SET_NX) {
			cond = DB_SET_XX;
		} else if (arg_is(a, "GET")) {
			get = true;
		} else if (arg_is(a, "KEEPTTL") && !has_expire) {
			keepttl = true;
		} else if ((arg_is(a, "EX") || arg_is(a, "PX")) && !has_expire && !keepttl &&
		           has_next) {
			long long v;
			if (resp_parse_ll(r->argv[i + 1].p, r->argv[i + 1].len, &v) < 0) {
				not_integer(c);
				return;
			}
			bool secs = arg_is(a, "EX");
			if (v <= 0 || (secs && v > LLONG_MAX / 1000) ||
			    (secs ? v * 1000 : v) > LLONG_MAX - db_now_ms()) {
				resp_add_error(&c->out, "ERR invalid expire time in 'set' command");
				return;
			}
			expire_at = db_now_ms() + (secs ? v * 1000 : v);
			has_expire = true;
			i++;
		} else {
			resp_add_error(&c->out, "ERR syntax error");
			return;
		}
	}
	if (get)
		db_get(db, &r->argv[1], &c->out); /* the old value, then set */
	bool oom;
	bool set = db_set(db, &r->argv[1], &r->argv[2], cond, keepttl ? -1 : expire_at, &oom);
	if (oom)
		resp_add_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
	else if (!get)
		set ? resp_add_simple(&c->out, "OK") : resp_add_null(&c->out);
}

static void cmd_del(struct client *c, const struct resp_request *r)
{
	long long n = 0;
	for (size_t i = 1; i < r->argc; i++)
		n += db_del(db, &r->argv[i]);
	resp_add_int(&c->out, n);
}

static void cmd_exists(struct client *c, const struct resp_request *r)
{
	long long n = 0;
	for (size_t i = 1; i < r->argc; i++)
		n += db_exists(db, &r->argv[i]);
	resp_add_int(&c->out, n);
}

static void incr_by(struct client *c, const struct resp_arg *key, long long by)
{
	long long v;
	int rc = db_incrby(db, key, by, &v);
	if (rc == 0)
		resp_add_int(&c->out, v);
	else if (rc == -1)
		not_integer(c);
	else if (rc == -2)
		resp_add_error(&c->out, "ERR increment or decrement would overflow");
	else
		resp_add_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
}

static void cmd_incr(struct client *c, const struct resp_request *r)
{
	incr_by(c, &r->argv[1], 1);
}

static void cmd_decr(struct client *c, const struct resp_request *r)
{
	incr_by(c, &r->argv[1], -1);
}

static void cmd_incrby(struct client *c, const struct resp_request *r)
{
	long long by;
	if (resp_parse_ll(r->argv[2].p, r->argv[2].len, &by) < 0)
		not_integer(c);
	else
		incr_by(c, &r->argv[1], by);
}

static void cmd_decrby(struct client *c, const struct resp_request *r)
{
	long long by;
	if (resp_parse_ll(r->argv[2].p, r->argv[2].len, &by) < 0)
		not_integer(c);
	else if (by == LLONG_MIN)
		resp_add_error(&c->out, "ERR decrement would overflow");
	else
		incr_by(c, &r->argv[1], -by);
}

static void expire_generic(struct client *c, const struct resp_request *r, bool secs,
                           const char *name)
{
	long long v;
	if (resp_parse_ll(r->argv[2].p, r->argv[2].len, &v) < 0) {
		not_integer(c);
		return;
	}
	if (r->argc > 3) {
		resp_add_errorf(&c->out, "ERR Unsupported option %.*s", (int)r->argv[3].len,
		                r->argv[3].p);
		return;
	}
	int64_t now = db_now_ms();
	if ((secs && (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000)) ||
	    (secs ? v * 1000 : v) > LLONG_MAX - now) {
		resp_add_errorf(&c->out, "ERR invalid expire time in '%s' command", name);
		return;
	}
	int64_t at = now + (secs ? v * 1000 : v);
	resp_add_int(&c->out, db_expire(db, &r->argv[1], at));
}

static void cmd_expire(struct client *c, const struct resp_request *r)
{
	expire_generic(c, r, true, "expire");
}

static void cmd_pexpire(struct client *c, const struct resp_request *r)
{
	expire_generic(c, r, false, "pexpire");
}

static void cmd_ttl(struct client *c, const struct resp_request *r)
{
	int64_t ms = db_ttl_ms(db, &r->argv[1]);
	resp_add_int(&c->out, ms < 0 ? ms : (ms + 500) / 1000);
}

static void cmd_pttl(struct client *c, const struct resp_request *r)
{
	resp_add_int(&c->out, db_ttl_ms(db, &r->argv[1]));
}

static void cmd_mget(struct client *c, const struct resp_request *r)
{
	resp_add_array(&c->out, (long long)r->argc - 1);
	for (size_t i = 1; i < r->argc; i++)
		db_get(db, &r->argv[i], &c->out);
}

static void cmd_mset(struct client *c, const struct resp_request *r)
{
	if (r->argc % 2 == 0) {
		wrong_args(c, &r->argv[0]);
		return;
	}
	for (size_t i = 1; i < r->argc; i += 2) {
		bool oom;
		db_set(db, &r->argv[i], &r->argv[i + 1], DB_SET_ALWAYS, 0, &oom);
		if (oom) {
			resp_add_error(&c->out,
			               "OOM command not allowed when used memory > 'maxmemory'.");
			return;
		}
	}
	resp_add_simple(&c->out, "OK");
}

static void cmd_keys(struct client *c, const struct resp_request *r)
{
	db_keys(db, &r->argv[1], &c->out);
}

static void cmd_dbsize(struct client *c, const struct resp_request *r)
{
	(void)r;
	resp_add_int(&c->out, (long long)db_size(db));
}

static void cmd_flushall(struct client *c, const struct resp_request *r)
{
	if (r->argc > 2 ||
	    (r->argc == 2 && !arg_is(&r->argv[1], "ASYNC") && !arg_is(&r->argv[1], "SYNC"))) {
		resp_add_error(&c->out, "ERR syntax error");
		return;
	}
	db_flush(db);
	resp_add_simple(&c->out, "OK");
}

/* ------------------------------------------------------------ connection */

static void cmd_ping(struct client *c, const struct resp_request *r)
{
	if (r->argc > 2) {
		wrong_args(c, &r->argv[0]);
	} else if (pubsub_count(&c->sub)) { /* RESP2 in subscribed mode */
		resp_add_array(&c->out, 2);
		resp_add_cstr(&c->out, "pong");
		resp_add_bulk(&c->out, r->argc == 2 ? r->argv[1].p : "",
		              r->argc == 2 ? r->argv[1].len : 0);
	} else if (r->argc == 2) {
		resp_add_bulk(&c->out, r->argv[1].p, r->argv[1].len);
	} else {
		resp_add_simple(&c->out, "PONG");
	}
}

static void cmd_echo(struct client *c, const struct resp_request *r)
{
	resp_add_bulk(&c->out, r->argv[1].p, r->argv[1].len);
}

static void cmd_quit(struct client *c, const struct resp_request *r)
{
	(void)r;
	resp_add_simple(&c->out, "OK");
	c->quit = true;
}

static void cmd_select(struct client *c, const struct resp_request *r)
{
	long long n;
	if (resp_parse_ll(r->argv[1].p, r->argv[1].len, &n) < 0)
		not_integer(c);
	else if (n != 0)
		resp_add_error(&c->out, "ERR DB index is out of range");
	else
		resp_add_simple(&c->out, "OK");
}

static void cmd_client(struct client *c, const struct resp_request *r)
{
	const struct resp_arg *sub = &r->argv[1];
	if ((arg_is(sub, "SETNAME") && r->argc != 3) ||
	    ((arg_is(sub, "GETNAME") || arg_is(sub, "ID")) && r->argc != 2)) {
		char name[64];
		lower_name(sub, name, sizeof name);
		resp_add_errorf(&c->out, "ERR wrong number of arguments for 'client|%s' command",
		                name);
	} else if (arg_is(sub, "SETNAME")) {
		const struct resp_arg *n = &r->argv[2];
		for (size_t i = 0; i < n->len; i++)
			if (n->p[i] < '!' || n->p[i] > '~') {
				resp_add_error(&c->out,
				               "ERR Client names cannot contain spaces, newlines "
				               "or special characters.");
				return;
			}
		size_t len = n->len < sizeof c->name - 1 ? n->len : sizeof c->name - 1;
		memcpy(c->name, n->p, len);
		c->name[len] = '\0';
		resp_add_simple(&c->out, "OK");
	} else if (arg_is(sub, "GETNAME")) {
		*c->name ? resp_add_cstr(&c->out, c->name) : resp_add_null(&c->out);
	} else if (arg_is(sub, "ID")) {
		resp_add_int(&c->out, c->id);
	} else {
		char name[64];
		lower_name(sub, name, sizeof name);
		resp_add_errorf(&c->out,
		                "ERR unknown subcommand or wrong number of arguments for '%s'. Try "
		                "CLIENT HELP.",
		                name);
	}
}

/* What redis-benchmark asks before it starts (it only warns without). */
static void cmd_config(struct client *c, const struct resp_request *r)
{
	if (!arg_is(&r->argv[1], "GET") || r->argc != 3) {
		resp_add_error(&c->out, "ERR CONFIG: only CONFIG GET <parameter> is supported");
		return;
	}
	const struct resp_arg *p = &r->argv[2];
	if (arg_is(p, "save") || arg_is(p, "appendonly")) {
		resp_add_array(&c->out, 2);
		resp_add_bulk(&c->out, p->p, p->len);
		resp_add_cstr(&c->out, arg_is(p, "save") ? "" : "no");
	} else {
		resp_add_array(&c->out, 0);
	}
}

static void cmd_command(struct client *c, const struct resp_request *r);

/* ---------------------------------------------------------------- pub/sub */

static bool start_subscribing(struct client *c)
{
	if (pubsub_attach(&c->sub) == 0)
		return true;
	resp_add_error(&c->out, "ERR out of memory");
	return false;
}

static void cmd_subscribe(struct client *c, const struct resp_request *r)
{
	if (!start_subscribing(c))
		return;
	for (size_t i = 1; i < r->argc; i++)
		pubsub_subscribe(ps, &c->sub, &r->argv[i], false, &c->out);
}

static void cmd_psubscribe(struct client *c, const struct resp_request *r)
{
	if (!start_subscribing(c))
		return;
	for (size_t i = 1; i < r->argc; i++)
		pubsub_subscribe(ps, &c->sub, &r->argv[i], true, &c->out);
}

static void unsubscribe_generic(struct client *c, const struct resp_request *r, bool pattern)
{
	if (r->argc == 1)
		pubsub_unsubscribe(ps, &c->sub, NULL, pattern, &c->out);
	for (size_t i = 1; i < r->argc; i++)
		pubsub_unsubscribe(ps, &c->sub, &r->argv[i], pattern, &c->out);
}

static void cmd_unsubscribe(struct client *c, const struct resp_request *r)
{
	unsubscribe_generic(c, r, false);
}

static void cmd_punsubscribe(struct client *c, const struct resp_request *r)
{
	unsubscribe_generic(c, r, true);
}

static void cmd_publish(struct client *c, const struct resp_request *r)
{
	resp_add_int(&c->out, pubsub_publish(ps, &r->argv[1], &r->argv[2]));
}

/* --------------------------------------------------------------- dispatch */

struct command {
	const char *name;
	void (*fn)(struct client *c, const struct resp_request *r);
	int arity;       /* as Redis's: n exactly, -n at least n (the name counts) */
	bool subscribed; /* allowed in subscribed mode */
};

static const struct command commands[] = {
        {"get", cmd_get, 2, false},
        {"set", cmd_set, -3, false},
        {"del", cmd_del, -2, false},
        {"exists", cmd_exists, -2, false},
        {"incr", cmd_incr, 2, false},
        {"decr", cmd_decr, 2, false},
        {"incrby", cmd_incrby, 3, false},
        {"decrby", cmd_decrby, 3, false},
        {"expire", cmd_expire, -3, false},
        {"pexpire", cmd_pexpire, -3, false},
        {"ttl", cmd_ttl, 2, false},
        {"pttl", cmd_pttl, 2, false},
        {"mget", cmd_mget, -2, false},
        {"mset", cmd_mset, -3, false},
        {"keys", cmd_keys, 2, false},
        {"dbsize", cmd_dbsize, 1, false},
        {"flushall", cmd_flushall, -1, false},
        {"flushdb", cmd_flushall, -1, false},
        {"ping", cmd_ping, -1, true},
        {"echo", cmd_echo, 2, false},
        {"quit", cmd_quit, -1, true},
        {"select", cmd_select, 2, false},
        {"client", cmd_client, -2, false},
        {"config", cmd_config, -2, false},
        {"command", cmd_command, -1, false},
        {"publish", cmd_publish, 3, false},
        {"subscribe", cmd_subscribe, -2, true},
        {"psubscribe", cmd_psubscribe, -2, true},
        {"unsubscribe", cmd_unsubscribe, -1, true},
        {"punsubscribe", cmd_punsubscribe, -1, true},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void cmd_command(struct client *c, const struct resp_request *r)
{
	if (r->argc == 2 && arg_is(&r->argv[1], "COUNT")) {
		resp_add_int(&c->out, (long long)NCOMMANDS);
	} else if (r->argc == 1 || arg_is(&r->argv[1], "DOCS") || arg_is(&r->argv[1], "INFO")) {
		/* Names and arities only: what a client needs to know which
		   commands exist (redis-cli's hints want DOCS, which it may go
		   without). */
		bool docs = r->argc > 1 && arg_is(&r->argv[1], "DOCS");
		resp_add_array(&c->out, docs ? 0 : (long long)NCOMMANDS);
		for (size_t i = 0; !docs && i < NCOMMANDS; i++) {
			resp_add_array(&c->out, 2);
			resp_add_cstr(&c->out, commands[i].name);
			resp_add_int(&c->out, commands[i].arity);
		}
	} else {
		char name[64];
		lower_name(&r->argv[1], name, sizeof name);
		resp_add_errorf(&c->out, "ERR unknown subcommand '%s'. Try COMMAND HELP.", name);
	}
}

static const struct command *find_command(const struct resp_arg *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (arg_is(name, commands[i].name))
			return &commands[i];
	return NULL;
}

static void execute(struct client *c, const struct resp_request *r)
{
	const struct command *cmd = find_command(&r->argv[0]);
	if (!cmd) {
		unknown_command(c, r);
		return;
	}
	if ((cmd->arity > 0 && r->argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && r->argc < (size_t)-cmd->arity)) {
		wrong_args(c, &r->argv[0]);
		return;
	}
	if (pubsub_count(&c->sub) && !cmd->subscribed) {
		char name[64];
		lower_name(&r->argv[0], name, sizeof name);
		resp_add_errorf(&c->out,
		                "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
		                "PING / QUIT / RESET are allowed in this context",
		                name);
		return;
	}
	cmd->fn(c, r);
}

/* Sends the buffered replies: straight to the socket, or, once the client
   subscribed, through its outbox (behind the messages queued there).
   Shielded: what a client was promised reaches it, shutdown or not. */
static bool flush(struct client *c)
{
	if (c->out.len == 0)
		return !c->out.failed;
	weft_shield_push();
	bool ok;
	if (c->sub.outbox) {
		ok = pubsub_send(&c->sub, &c->out) == 0;
	} else {
		ok = weft_send_all(c->sub.fd, c->out.data, c->out.len) == (ssize_t)c->out.len;
		c->out.len = 0;
	}
	weft_shield_pop();
	return ok && !c->out.failed;
}

/* Runs every complete request in buf[0, *len) and drops them from it.
   false: the connection must close (protocol error, QUIT, write failed). */
static bool run_requests(struct client *c, char *buf, size_t *len, size_t *need,
                         struct resp_request *req)
{
	size_t pos = 0;
	bool open = true;
	while (open && !c->quit) {
		size_t used;
		const char *error;
		enum resp_status st = resp_parse(buf + pos, *len - pos, req, &used, need, &error);
		if (st == RESP_MORE) {
			break;
		} else if (st == RESP_ERROR) {
			resp_add_errorf(&c->out, "ERR %s", error);
			c->bad_input = true;
			open = false;
		} else if (st == RESP_NOMEM) {
			resp_add_error(&c->out, "ERR out of memory");
			open = false;
		} else {
			pos += used;
			if (req->argc)
				execute(c, req);
			if (c->out.len >= FLUSH_AT && !flush(c))
				open = false;
		}
	}
	memmove(buf, buf + pos, *len - pos); /* *need counts from the request's start: now 0 */
	*len -= pos;
	return open && !c->quit;
}

/* After a protocol error the client may still be sending the rest of what
   it meant: closing with its bytes unread would reset the connection, and
   a reset can discard the error reply before the client reads it. So the
   write side is shut first and the input read away (for at most
   LINGER_MS, at most LINGER_BYTES), as web servers' lingering close does. */
#define LINGER_MS 200
#define LINGER_BYTES (1024 * 1024)

static void linger_close(int fd)
{
	weft_shutdown(fd, SHUT_WR);
	weft_shield_push(); /* also while shutting down: bounded by the deadline */
	weft_deadline d;
	weft_deadline_push(&d, LINGER_MS);
	char sink[4096];
	size_t total = 0;
	ssize_t n;
	while (total < LINGER_BYTES && (n = weft_recv(fd, sink, sizeof sink, 0)) > 0)
		total += (size_t)n;
	weft_deadline_pop(&d);
	weft_shield_pop();
}

static void *connection(void *arg)
{
	struct client c = {.sub.fd = (int)(intptr_t)arg};
	c.id = atomic_fetch_add(&next_client_id, 1);
	struct resp_request req = {0};
	size_t cap = READ_CHUNK, len = 0, need = 0;
	char *buf = malloc(cap);
	bool registered = register_conn(&c);
	bool open = buf && registered;
	while (open) {
		if (cap - len < READ_CHUNK || need > cap) {
			size_t want = need > len + READ_CHUNK ? need : len + READ_CHUNK;
			if ((long long)want > QUERY_LIMIT) {
				break; /* Redis closes a client past its query buffer limit too */
			}
			char *grown = realloc(buf, want);
			if (!grown)
				break;
			buf = grown;
			cap = want;
		}
		ssize_t n = weft_recv(c.sub.fd, buf + len, cap - len, 0);
		if (n <= 0)
			break; /* closed, an error, or cancelled by shutdown */
		len += (size_t)n;
		if (need > len)
			continue; /* a large bulk string still arriving */
		open = run_requests(&c, buf, &len, &need, &req);
		open = flush(&c) && open;
	}
	flush(&c); /* a protocol error's or QUIT's reply */
	if (c.bad_input)
		linger_close(c.sub.fd);
	pubsub_detach(ps, &c.sub);
	if (registered)
		mark_fd_closed(&c);
	weft_close(c.sub.fd);
	resp_request_free(&req);
	resp_out_free(&c.out);
	free(buf);
	if (registered)
		unregister_conn(&c);
	return NULL;
}

/* --------------------------------------------------------------- startup */

static int start(void)
{
	weft_notify_init(&conns_gone);
	db = db_new(nshards);
	ps = pubsub_new();
	if (!db || !ps) {
		fprintf(stderr, "weft-redis: out of memory\n");
		return 1;
	}
	return 0;
}

/* The listener is closed: every connection is asked to finish (its pending
   read is cancelled; what it has read is answered), then the keyspace
   goes. */
static void stop(void)
{
	weft_shield_push();
	weft_mutex_lock(&conns_lock);
	stopping = true;
	for (size_t i = 0; i < nconns; i++)
		weft_cancel(conns[i]->task);
	uint64_t give_up = weft_now_ns() + STOP_GRACE_MS * 1000000ull;
	while (nconns) {
		if (weft_now_ns() >= give_up) {
			/* A client that does not read its replies: its socket is shut,
			   so its pending write fails and it goes. */
			for (size_t i = 0; i < nconns; i++)
				if (!conns[i]->fd_closed)
					shutdown(conns[i]->sub.fd, SHUT_RDWR);
			give_up = UINT64_MAX;
		}
		weft_mutex_unlock(&conns_lock);
		weft_deadline d;
		weft_deadline_push(&d, 100);
		weft_notify_wait(&conns_gone);
		weft_deadline_pop(&d);
		weft_mutex_lock(&conns_lock);
	}
	weft_mutex_unlock(&conns_lock);
	weft_shield_pop();
	free(conns);
	if (db)
		db_free(db);
	if (ps)
		pubsub_free(ps);
}

static int option(int argc, char **argv, int i)
{
	if (!strcmp(argv[i], "--shards") && i + 1 < argc) {
		long n = atol(argv[i + 1]);
		if (n < 1 || n > 65536 || (n & (n - 1))) {
			fprintf(stderr, "weft-redis: --shards takes a power of two, 1 to 65536\n");
			exit(2);
		}
		nshards = (unsigned)n;
		return 2;
	}
	if (!strcmp(argv[i], "--outbox") && i + 1 < argc) {
		long n = atol(argv[i + 1]);
		if (n < 1 || n > 1 << 20) {
			fprintf(stderr, "weft-redis: --outbox takes 1 to 1048576 messages\n");
			exit(2);
		}
		pubsub_set_outbox((size_t)n);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct example_server s = {
	        .name = "weft-redis",
	        .about = "Redis-compatible server (RESP2): strings, expiry, pub/sub.",
	        .host = "127.0.0.1",
	        .port = 6380,
	        .connection = connection,
	        .option = option,
	        .help = "  --shards N   keyspace shards, a power of two (default 64)\n"
	                "  --outbox N   messages a subscriber may have queued before it is\n"
	                "               disconnected as too slow (default 4096)\n",
	        .start = start,
	        .stop = stop,
	};
	weft_config_init(&s.cfg);
	int rc = example_parse_args(&s, argc, argv);
	return rc >= 0 ? rc : example_serve(&s);
}
