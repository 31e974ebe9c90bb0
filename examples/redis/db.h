/*
 * The keyspace: string keys to string values, sharded by key hash into
 * shards that each have a weft_mutex, a chained hash table and a min-heap
 * of expiry times. Keys with a TTL expire two ways, as in Redis: lazily,
 * when an operation finds them past their time, and actively, by one task
 * per shard that sleeps (a weft timer) until the shard's earliest expiry
 * and deletes what is due.
 *
 * All functions take a shard's lock for the one key (or one at a time for
 * several keys: a multi-key command is atomic per key, not as a whole --
 * Redis's single thread makes MSET atomic; here another client may see
 * half of one). Times are monotonic milliseconds (db_now_ms).
 */
#ifndef WEFT_REDIS_DB_H
#define WEFT_REDIS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resp.h"

struct db;

/* A db of nshards (a power of two) shards, with their expiry tasks spawned
   in the current runtime. NULL: out of memory. */
struct db *db_new(unsigned nshards);
/* Stops the expiry tasks and frees everything. */
void db_free(struct db *db);

int64_t db_now_ms(void);

/* GET: appends the value as a bulk string (or the null bulk) to out. */
void db_get(struct db *db, const struct resp_arg *key, struct resp_out *out);

enum db_set_cond { DB_SET_ALWAYS, DB_SET_NX, DB_SET_XX };

/* SET: expire_at 0 = no TTL, -1 = keep the current one (KEEPTTL). True if
   it was set (the condition held); false also when out of memory (*oom). */
bool db_set(struct db *db, const struct resp_arg *key, const struct resp_arg *val,
            enum db_set_cond cond, int64_t expire_at, bool *oom);

/* DEL / EXISTS of one key: 1 or 0. */
int db_del(struct db *db, const struct resp_arg *key);
int db_exists(struct db *db, const struct resp_arg *key);

/* INCRBY: 0 and *result, or -1 (not an integer), -2 (overflow), -3 (oom). */
int db_incrby(struct db *db, const struct resp_arg *key, long long by, long long *result);

/* EXPIRE: sets the TTL to expire_at (at or before now: deletes the key);
   1 if the key exists, else 0. */
int db_expire(struct db *db, const struct resp_arg *key, int64_t expire_at);

/* TTL in ms: -2 no such key, -1 no TTL, else the ms left. */
int64_t db_ttl_ms(struct db *db, const struct resp_arg *key);

/* KEYS: appends the array of keys matching the glob pattern. */
void db_keys(struct db *db, const struct resp_arg *pattern, struct resp_out *out);

size_t db_size(struct db *db);
void db_flush(struct db *db);

/* Redis's glob matching (stringmatchlen): * ? [abc] [^a-z] and \ escapes. */
bool db_glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

#endif
