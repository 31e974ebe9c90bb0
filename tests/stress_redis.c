/*
 * weft-redis's keyspace and pub/sub under concurrency (a plain main()
 * program, for ThreadSanitizer): tasks on every worker hammer a shared set
 * of keys with SET (some with millisecond TTLs), GET, DEL and EXPIRE while
 * the shards' expiry tasks delete what is due; INCRs on shared counters
 * must add up exactly; keys with a TTL must all be gone afterwards without
 * anyone reading them (the expiry tasks); two subscribers (one by
 * channel, one by pattern), each writing into a socketpair read by a
 * plain thread, must receive every message of two concurrent publishers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#include "examples/redis/db.h"
#include "examples/redis/pubsub.h"
#include "tests/common.h"

#define CLIENTS 8
#define KEYS 200
#define COUNTERS 4

static struct db *db;
static struct pubsub *ps;
static long ops_per_client, incrs_per_client, messages_per_publisher;
static _Atomic long failures;

static void fail(const char *what)
{
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "stress_redis: %s\n", what);
}

static struct resp_arg arg(const char *s)
{
	return (struct resp_arg){s, strlen(s)};
}

static void *client(void *p)
{
	uint64_t rng = 0x9E3779B97F4A7C15ull * ((uintptr_t)p + 1);
	struct resp_out out = {0};
	char key[32], val[32];
	for (long i = 0; i < ops_per_client; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		snprintf(key, sizeof key, "k%u", (unsigned)(rng % KEYS));
		snprintf(val, sizeof val, "v%ld", i);
		struct resp_arg k = arg(key), v = arg(val);
		bool oom;
		switch (rng >> 60) {
		case 0:
		case 1:
		case 2:
		case 3:
			db_set(db, &k, &v, DB_SET_ALWAYS, 0, &oom);
			break;
		case 4:
		case 5: /* a TTL of 1-4 ms */
			db_set(db, &k, &v, DB_SET_ALWAYS, db_now_ms() + 1 + (int64_t)(rng % 4),
			       &oom);
			break;
		case 6:
			db_del(db, &k);
			break;
		case 7:
			db_expire(db, &k, db_now_ms() + 2);
			break;
		default:
			db_get(db, &k, &out);
			out.len = 0;
			break;
		}
		if (i % 64 == 0)
			weft_yield();
	}
	snprintf(key, sizeof key, "ctr%u", (unsigned)((uintptr_t)p % COUNTERS));
	struct resp_arg ctr = arg(key);
	for (long i = 0; i < incrs_per_client; i++) {
		long long v;
		if (db_incrby(db, &ctr, 1, &v) != 0)
			fail("INCR failed (the counter's value is not an integer)");
	}
	resp_out_free(&out);
	return NULL;
}

/* ----------------------------------------------------------------- pub/sub */

struct reader {
	int fd;
	long messages; /* "message" or "pmessage" frames seen */
};

/* Counts the message frames in what the subscriber's writer sent: each
   "message" and "pmessage" frame has "message\r\n" in it, nothing else
   sent to it does. */
static void *read_frames(void *p)
{
	struct reader *r = p;
	static const char tag[] = "message\r\n";
	char win[sizeof tag - 1] = {0}, buf[65536];
	ssize_t n;
	while ((n = read(r->fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++) {
			memmove(win, win + 1, sizeof win - 1);
			win[sizeof win - 1] = buf[i];
			r->messages += !memcmp(win, tag, sizeof win);
		}
	return NULL;
}

struct subscriber {
	struct sub_client c;
	const char *name;
	bool pattern;
	weft_notify subscribed, done;
};

static void *subscriber(void *p)
{
	struct subscriber *s = p;
	struct resp_out out = {0};
	if (pubsub_attach(&s->c) != 0) {
		fail("attach");
		return NULL;
	}
	struct resp_arg name = arg(s->name);
	pubsub_subscribe(ps, &s->c, &name, s->pattern, &out);
	pubsub_send(&s->c, &out);
	weft_notify_one(&s->subscribed);
	weft_notify_wait(&s->done); /* until the publishers finished */
	pubsub_detach(ps, &s->c);   /* the writer sends what is queued first */
	resp_out_free(&out);
	return NULL;
}

static void *publisher(void *p)
{
	(void)p;
	struct resp_arg ch = arg("news");
	char msg[32];
	for (long i = 0; i < messages_per_publisher; i++) {
		snprintf(msg, sizeof msg, "m%ld", i);
		struct resp_arg m = arg(msg);
		long long got = pubsub_publish(ps, &ch, &m);
		if (got != 2)
			fail("a publish did not reach both subscribers");
		if (i % 32 == 0)
			weft_yield();
	}
	return NULL;
}

static void *run(void *unused)
{
	(void)unused;
	db = db_new(16);
	ps = pubsub_new();
	if (!db || !ps)
		return (void *)1;
	weft_task *t[CLIENTS];
	for (uintptr_t i = 0; i < CLIENTS; i++)
		t[i] = weft_spawn(client, (void *)i);

	struct subscriber subs[2] = {{.name = "news"}, {.name = "n*", .pattern = true}};
	struct reader readers[2];
	pthread_t rt[2];
	weft_task *st[2];
	for (int i = 0; i < 2; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			return (void *)1;
		subs[i].c.fd = sv[0];
		readers[i] = (struct reader){.fd = sv[1]};
		pthread_create(&rt[i], NULL, read_frames, &readers[i]);
		weft_notify_init(&subs[i].subscribed);
		weft_notify_init(&subs[i].done);
		st[i] = weft_spawn(subscriber, &subs[i]);
		weft_notify_wait(&subs[i].subscribed);
	}
	weft_task *pub[2] = {weft_spawn(publisher, NULL), weft_spawn(publisher, NULL)};
	for (int i = 0; i < 2; i++)
		weft_join(pub[i], NULL);
	for (int i = 0; i < 2; i++) {
		weft_notify_one(&subs[i].done);
		weft_join(st[i], NULL);
		shutdown(subs[i].c.fd, SHUT_WR);
		pthread_join(rt[i], NULL);
		close(subs[i].c.fd);
		close(readers[i].fd);
		if (readers[i].messages != 2 * messages_per_publisher) {
			fprintf(stderr, "stress_redis: subscriber %d got %ld of %ld messages\n", i,
			        readers[i].messages, 2 * messages_per_publisher);
			atomic_fetch_add(&failures, 1);
		}
	}

	for (int i = 0; i < CLIENTS; i++)
		weft_join(t[i], NULL);
	for (unsigned c = 0; c < COUNTERS; c++) {
		char key[16];
		snprintf(key, sizeof key, "ctr%u", c);
		struct resp_arg k = arg(key);
		struct resp_out out = {0};
		db_get(db, &k, &out);
		char want[64];
		snprintf(want, sizeof want, "%ld", incrs_per_client * (CLIENTS / COUNTERS));
		char *body = out.data ? strstr(out.data, "\r\n") : NULL;
		if (!body || strncmp(body + 2, want, strlen(want)))
			fail("counters do not add up");
		resp_out_free(&out);
	}
	/* Active expiry: once what the clients left has settled, 100 keys
	   with a 5 ms TTL are added; the expiry tasks must delete them
	   without anyone reading them. */
	size_t settled = db_size(db), now_size;
	for (;;) {
		weft_sleep_ms(20);
		if ((now_size = db_size(db)) == settled)
			break;
		settled = now_size;
	}
	for (int i = 0; i < 100; i++) {
		char key[16];
		snprintf(key, sizeof key, "x%d", i);
		struct resp_arg k = arg(key), v = arg("v");
		bool oom;
		db_set(db, &k, &v, DB_SET_ALWAYS, db_now_ms() + 5, &oom);
	}
	uint64_t give_up = test_now_ns() + 10000ull * 1000000ull;
	while (db_size(db) != settled && test_now_ns() < give_up)
		weft_sleep_ms(1);
	if (db_size(db) != settled)
		fail("keys with a TTL outlived it (the expiry tasks did not delete them)");
	if (settled > KEYS + COUNTERS)
		fail("more keys than were ever written");
	db_free(db);
	pubsub_free(ps);
	return NULL;
}

int main(void)
{
	alarm(240);
	ops_per_client = test_scale(40000);
	incrs_per_client = test_scale(5000);
	messages_per_publisher = test_scale(2000);
	weft_config cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	void *rc = NULL;
	if (weft_run(run, NULL, &cfg, &rc) != 0 || rc) {
		fprintf(stderr, "stress_redis: could not run\n");
		return 1;
	}
	long f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "stress_redis: %ld failures\n", f);
		return 1;
	}
	printf("stress_redis: %d clients x %ld ops, counters exact, every TTL expired, %ld "
	       "messages to each subscriber\n",
	       CLIENTS, ops_per_client, 2 * messages_per_publisher);
	return 0;
}
