/*
 * The sharded keyspace; see db.h.
 *
 * Each shard: a chained hash table (power-of-two buckets, doubled at load
 * factor 1) and a binary min-heap of the entries that have a TTL, ordered
 * by expiry time; each such entry knows its index in the heap, so that a
 * delete or a new TTL updates the heap in O(log n). The shard's expiry task
 * sleeps on the shard's weft_notify under a deadline scope set to the
 * earliest expiry; a command that sets an earlier one notifies it.
 */
#include "db.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#define NO_HEAP SIZE_MAX
#define EXPIRE_BATCH 1000 /* deletions per lock hold in the expiry task */

struct entry {
	struct entry *next;
	uint64_t hash;
	int64_t expire_at; /* 0: none */
	size_t heap_idx;   /* NO_HEAP when no TTL */
	char *val;
	size_t vlen;
	size_t klen;
	char key[];
};

struct shard {
	_Alignas(64) weft_mutex lock;
	struct entry **buckets;
	size_t nbuckets, count;
	struct entry **heap;
	size_t heap_len, heap_cap;
	weft_notify wake; /* an earlier expiry than the task sleeps for */
	weft_task *expirer;
};

struct db {
	unsigned nshards;
	struct shard *shards;
};

int64_t db_now_ms(void)
{
	return (int64_t)(weft_now_ns() / 1000000);
}

static uint64_t hash_key(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (len * 0x9E3779B97F4A7C15ull);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

static struct shard *shard_of(struct db *db, uint64_t h)
{
	return &db->shards[(h >> 48) & (db->nshards - 1)];
}

/* ------------------------------------------------------------------ heap */

static bool earlier(const struct entry *a, const struct entry *b)
{
	return a->expire_at < b->expire_at;
}

static void heap_set(struct shard *s, size_t i, struct entry *e)
{
	s->heap[i] = e;
	e->heap_idx = i;
}

static void heap_up(struct shard *s, size_t i)
{
	struct entry *e = s->heap[i];
	while (i > 0 && earlier(e, s->heap[(i - 1) / 2])) {
		heap_set(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(s, i, e);
}

static void heap_down(struct shard *s, size_t i)
{
	struct entry *e = s->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->heap_len)
			break;
		if (c + 1 < s->heap_len && earlier(s->heap[c + 1], s->heap[c]))
			c++;
		if (!earlier(s->heap[c], e))
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, e);
}

static void heap_remove(struct shard *s, struct entry *e)
{
	size_t i = e->heap_idx;
	if (i == NO_HEAP)
		return;
	e->heap_idx = NO_HEAP;
	struct entry *last = s->heap[--s->heap_len];
	if (i == s->heap_len)
		return;
	heap_set(s, i, last);
	heap_up(s, i);
	heap_down(s, last->heap_idx);
}

static bool heap_insert(struct shard *s, struct entry *e)
{
	if (s->heap_len == s->heap_cap) {
		size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
		struct entry **h = realloc(s->heap, cap * sizeof *h);
		if (!h)
			return false;
		s->heap = h;
		s->heap_cap = cap;
	}
	heap_set(s, s->heap_len++, e);
	heap_up(s, e->heap_idx);
	return true;
}

/* Sets e's expiry (0: none). True if the shard's expiry task must look
   again (the earliest expiry moved up). */
static bool set_expire(struct shard *s, struct entry *e, int64_t at, bool *oom)
{
	if (at == 0) {
		heap_remove(s, e);
		e->expire_at = 0;
		return false;
	}
	int64_t old_first = s->heap_len ? s->heap[0]->expire_at : INT64_MAX;
	e->expire_at = at;
	if (e->heap_idx != NO_HEAP) {
		heap_up(s, e->heap_idx);
		heap_down(s, e->heap_idx);
	} else if (!heap_insert(s, e)) {
		e->expire_at = 0;
		*oom = true;
		return false;
	}
	return at < old_first;
}

/* ----------------------------------------------------------------- table */

static struct entry **slot_of(struct shard *s, uint64_t h, const char *k, size_t klen)
{
	struct entry **p = &s->buckets[h & (s->nbuckets - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->hash == h && (*p)->klen == klen && !memcmp((*p)->key, k, klen))
			break;
	return p;
}

static void free_entry(struct entry *e)
{
	free(e->val);
	free(e);
}

static void unlink_entry(struct shard *s, struct entry **slot)
{
	struct entry *e = *slot;
	*slot = e->next;
	heap_remove(s, e);
	s->count--;
	free_entry(e);
}

/* The live entry for the key (an expired one is deleted on the way): the
   link that points to it, or the chain's terminating NULL link. */
static struct entry **lookup(struct shard *s, uint64_t h, const struct resp_arg *key)
{
	struct entry **slot = slot_of(s, h, key->p, key->len);
	if (*slot && (*slot)->expire_at && (*slot)->expire_at <= db_now_ms()) {
		unlink_entry(s, slot);
		/* *slot is now the next key in the chain, not this one. */
		slot = slot_of(s, h, key->p, key->len);
	}
	return slot;
}

static void grow(struct shard *s)
{
	size_t n = s->nbuckets * 2;
	struct entry **b = calloc(n, sizeof *b);
	if (!b)
		return; /* stay at this size: chains get longer, nothing breaks */
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i];
		while (e) {
			struct entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

static struct entry *insert(struct shard *s, uint64_t h, const struct resp_arg *key)
{
	struct entry *e = malloc(sizeof *e + key->len);
	if (!e)
		return NULL;
	memcpy(e->key, key->p, key->len);
	e->klen = key->len;
	e->hash = h;
	e->expire_at = 0;
	e->heap_idx = NO_HEAP;
	e->val = NULL;
	e->vlen = 0;
	if (s->count >= s->nbuckets)
		grow(s);
	struct entry **b = &s->buckets[h & (s->nbuckets - 1)];
	e->next = *b;
	*b = e;
	s->count++;
	return e;
}

static bool set_value(struct entry *e, const char *p, size_t len)
{
	char *v = malloc(len ? len : 1);
	if (!v)
		return false;
	memcpy(v, p, len);
	free(e->val);
	e->val = v;
	e->vlen = len;
	return true;
}

/* -------------------------------------------------------------- commands */

static void lock(struct shard *s)
{
	/* Keyspace work is never cut short: a cancelled client still finishes
	   the command it is in (shutdown lets connections flush). */
	weft_shield_push();
	weft_mutex_lock(&s->lock);
	weft_shield_pop();
}

static void unlock(struct shard *s, bool wake_expirer)
{
	weft_mutex_unlock(&s->lock);
	if (wake_expirer)
		weft_notify_one(&s->wake);
}

void db_get(struct db *db, const struct resp_arg *key, struct resp_out *out)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	struct entry *e = *lookup(s, h, key);
	if (e)
		resp_add_bulk(out, e->val, e->vlen);
	else
		resp_add_null(out);
	unlock(s, false);
}

bool db_set(struct db *db, const struct resp_arg *key, const struct resp_arg *val,
            enum db_set_cond cond, int64_t expire_at, bool *oom)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	*oom = false;
	lock(s);
	struct entry **slot = lookup(s, h, key);
	struct entry *e = *slot;
	if ((cond == DB_SET_NX && e) || (cond == DB_SET_XX && !e)) {
		unlock(s, false);
		return false;
	}
	bool fresh = !e;
	if (fresh && !(e = insert(s, h, key))) {
		unlock(s, false);
		*oom = true;
		return false;
	}
	if (!set_value(e, val->p, val->len)) {
		if (fresh)
			unlink_entry(s, &s->buckets[h & (s->nbuckets - 1)]);
		unlock(s, false);
		*oom = true;
		return false;
	}
	bool wake = expire_at >= 0 && set_expire(s, e, expire_at, oom);
	unlock(s, wake);
	return !*oom;
}

int db_del(struct db *db, const struct resp_arg *key)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	struct entry **slot = lookup(s, h, key);
	int n = *slot != NULL;
	if (n)
		unlink_entry(s, slot);
	unlock(s, false);
	return n;
}

int db_exists(struct db *db, const struct resp_arg *key)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	int n = *lookup(s, h, key) != NULL;
	unlock(s, false);
	return n;
}

int db_incrby(struct db *db, const struct resp_arg *key, long long by, long long *result)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	struct entry *e = *lookup(s, h, key);
	long long v = 0;
	int rc = 0;
	if (e && resp_parse_ll(e->val, e->vlen, &v) < 0)
		rc = -1;
	else if ((by < 0 && v < LLONG_MIN - by) || (by > 0 && v > LLONG_MAX - by))
		rc = -2;
	if (rc == 0) {
		v += by;
		char buf[32];
		int n = snprintf(buf, sizeof buf, "%lld", v);
		bool fresh = !e;
		if (fresh && !(e = insert(s, h, key))) {
			rc = -3;
		} else if (!set_value(e, buf, (size_t)n)) {
			rc = -3;
			if (fresh)
				unlink_entry(s, &s->buckets[h & (s->nbuckets - 1)]);
		}
		*result = v;
	}
	unlock(s, false);
	return rc;
}

int db_expire(struct db *db, const struct resp_arg *key, int64_t expire_at)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	struct entry **slot = lookup(s, h, key);
	if (!*slot) {
		unlock(s, false);
		return 0;
	}
	bool wake = false, oom = false;
	if (expire_at <= db_now_ms())
		unlink_entry(s, slot);
	else
		wake = set_expire(s, *slot, expire_at, &oom);
	unlock(s, wake);
	return 1;
}

int64_t db_ttl_ms(struct db *db, const struct resp_arg *key)
{
	uint64_t h = hash_key(key->p, key->len);
	struct shard *s = shard_of(db, h);
	lock(s);
	struct entry *e = *lookup(s, h, key);
	int64_t ttl = !e ? -2 : !e->expire_at ? -1 : e->expire_at - db_now_ms();
	unlock(s, false);
	return ttl < -2 ? 0 : ttl;
}

void db_keys(struct db *db, const struct resp_arg *pattern, struct resp_out *out)
{
	struct resp_out found = {0};
	long long n = 0;
	int64_t now = db_now_ms();
	for (unsigned i = 0; i < db->nshards; i++) {
		struct shard *s = &db->shards[i];
		lock(s);
		for (size_t b = 0; b < s->nbuckets; b++)
			for (struct entry *e = s->buckets[b]; e; e = e->next)
				if ((!e->expire_at || e->expire_at > now) &&
				    db_glob_match(pattern->p, pattern->len, e->key, e->klen,
				                  false)) {
					resp_add_bulk(&found, e->key, e->klen);
					n++;
				}
		unlock(s, false);
	}
	if (found.failed) {
		resp_add_error(out, "ERR out of memory");
	} else {
		resp_add_array(out, n);
		resp_add_raw(out, found.data, found.len);
	}
	resp_out_free(&found);
}

size_t db_size(struct db *db)
{
	size_t n = 0;
	for (unsigned i = 0; i < db->nshards; i++) {
		struct shard *s = &db->shards[i];
		lock(s);
		n += s->count;
		unlock(s, false);
	}
	return n;
}

static void clear_shard(struct shard *s)
{
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct entry *e = s->buckets[b];
		while (e) {
			struct entry *next = e->next;
			free_entry(e);
			e = next;
		}
		s->buckets[b] = NULL;
	}
	s->count = 0;
	s->heap_len = 0;
}

void db_flush(struct db *db)
{
	for (unsigned i = 0; i < db->nshards; i++) {
		struct shard *s = &db->shards[i];
		lock(s);
		clear_shard(s);
		unlock(s, false);
	}
}

/* ---------------------------------------------------------------- expiry */

static void *expire_task(void *arg)
{
	struct shard *s = arg;
	for (;;) {
		if (weft_mutex_lock(&s->lock) < 0)
			return NULL; /* cancelled: db_free */
		int64_t now = db_now_ms();
		int n = 0;
		while (s->heap_len && s->heap[0]->expire_at <= now && n < EXPIRE_BATCH) {
			struct entry *e = s->heap[0];
			unlink_entry(s, slot_of(s, e->hash, e->key, e->klen));
			n++;
		}
		int64_t next = s->heap_len ? s->heap[0]->expire_at : -1;
		weft_mutex_unlock(&s->lock);
		if (n == EXPIRE_BATCH) {
			if (weft_yield() < 0)
				return NULL;
			continue;
		}
		weft_deadline d;
		if (next >= 0)
			weft_deadline_push(&d, (uint64_t)(next - now));
		int rc = weft_notify_wait(&s->wake);
		if (next >= 0)
			weft_deadline_pop(&d);
		if (rc == -ECANCELED)
			return NULL;
	}
}

struct db *db_new(unsigned nshards)
{
	struct db *db = calloc(1, sizeof *db);
	if (!db)
		return NULL;
	db->nshards = nshards;
	db->shards = aligned_alloc(64, nshards * sizeof *db->shards);
	if (!db->shards) {
		free(db);
		return NULL;
	}
	memset(db->shards, 0, nshards * sizeof *db->shards);
	for (unsigned i = 0; i < nshards; i++) {
		struct shard *s = &db->shards[i];
		weft_mutex_init(&s->lock);
		weft_notify_init(&s->wake);
		s->nbuckets = 16;
		s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
		weft_spawn_opts opts = {.name = "redis-expire"};
		s->expirer = s->buckets ? weft_spawn_ex(NULL, expire_task, s, &opts) : NULL;
		if (!s->expirer) {
			db->nshards = i + 1;
			db_free(db);
			return NULL;
		}
	}
	return db;
}

void db_free(struct db *db)
{
	for (unsigned i = 0; i < db->nshards; i++) {
		struct shard *s = &db->shards[i];
		if (s->expirer) {
			weft_cancel(s->expirer);
			weft_join(s->expirer, NULL);
		}
		clear_shard(s);
		free(s->buckets);
		free(s->heap);
		weft_mutex_destroy(&s->lock);
		weft_notify_destroy(&s->wake);
	}
	free(db->shards);
	free(db);
}

/* ------------------------------------------------------------------ glob */

static int fold(int c, bool nocase)
{
	return nocase && c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether the one pattern element at pat (?, a [class], an escaped or a
   plain character) matches c; *used gets its length in the pattern. */
static bool element_matches(const char *pat, size_t plen, char c, bool nocase, size_t *used)
{
	int ch = fold((unsigned char)c, nocase);
	if (*pat == '?') {
		*used = 1;
		return true;
	}
	if (*pat == '\\' && plen >= 2) {
		*used = 2;
		return fold((unsigned char)pat[1], nocase) == ch;
	}
	if (*pat != '[') {
		*used = 1;
		return fold((unsigned char)*pat, nocase) == ch;
	}
	size_t i = 1;
	bool not = i < plen && pat[i] == '^', match = false;
	i += not ;
	while (i < plen && pat[i] != ']') {
		if (pat[i] == '\\' && i + 1 < plen) {
			match |= fold((unsigned char)pat[i + 1], nocase) == ch;
			i += 2;
		} else if (i + 2 < plen && pat[i + 1] == '-') {
			int lo = fold((unsigned char)pat[i], nocase);
			int hi = fold((unsigned char)pat[i + 2], nocase);
			if (lo > hi) {
				int t = lo;
				lo = hi;
				hi = t;
			}
			match |= ch >= lo && ch <= hi;
			i += 3;
		} else {
			match |= fold((unsigned char)pat[i], nocase) == ch;
			i++;
		}
	}
	*used = i < plen ? i + 1 : i; /* an unterminated class ends the pattern */
	return not ? !match : match;
}

/* Iterative, with one backtracking point (the last '*'), which is enough
   for globs and cannot recurse deep on a hostile pattern. */
bool db_glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
	size_t p = 0, i = 0, star = SIZE_MAX, star_i = 0;
	while (i < slen) {
		size_t used;
		if (p < plen && pat[p] == '*') {
			while (p < plen && pat[p] == '*')
				p++;
			star = p;
			star_i = i;
		} else if (p < plen && element_matches(pat + p, plen - p, s[i], nocase, &used)) {
			p += used;
			i++;
		} else if (star != SIZE_MAX) {
			p = star;
			i = ++star_i;
		} else {
			return false;
		}
	}
	while (p < plen && pat[p] == '*')
		p++;
	return p == plen;
}
