/*
 * Pub/sub; see pubsub.h. One weft_mutex guards the registry (a chained
 * hash table of channels, each with its subscribers, and a list of
 * pattern subscriptions). PUBLISH delivers under it without ever waiting
 * (weft_chan_try_send), so the lock is held for the length of a loop, and
 * a client that leaves takes it to unlink itself: after that no publisher
 * can reach its outbox.
 */
#include "pubsub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "db.h"

struct channel {
	struct channel *next;
	struct sub_client **subs;
	size_t nsubs, cap;
	size_t len;
	char name[];
};

struct pattern_sub {
	struct sub_client *client;
	struct resp_arg pattern; /* the client's copy */
};

struct pubsub {
	weft_mutex lock;
	struct channel **buckets;
	size_t nbuckets;
	struct pattern_sub *patterns;
	size_t npatterns, cap_patterns;
};

/* -------------------------------------------------------------- messages */

struct msg *msg_new(const void *data, size_t len)
{
	struct msg *m = malloc(sizeof *m + len);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	memcpy(m->data, data, len);
	return m;
}

void msg_unref(struct msg *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* --------------------------------------------------------------- outbox */

/* Sends what arrives in the outbox. At shutdown its wait is cancelled:
   what is queued still goes out (shielded), then it stops. */
static void *writer(void *arg)
{
	struct sub_client *c = arg;
	struct msg *m;
	bool ok = true;
	int rc;
	while ((rc = weft_chan_recv(c->outbox, &m)) == 0) {
		ok = ok && weft_send_all(c->fd, m->data, m->len) == (ssize_t)m->len;
		msg_unref(m);
	}
	if (rc == -ECANCELED) {
		weft_shield_push();
		while (weft_chan_try_recv(c->outbox, &m) == 0) {
			ok = ok && weft_send_all(c->fd, m->data, m->len) == (ssize_t)m->len;
			msg_unref(m);
		}
		weft_shield_pop();
	}
	return NULL;
}

static size_t outbox_size = PUBSUB_OUTBOX;

void pubsub_set_outbox(size_t messages)
{
	outbox_size = messages;
}

int pubsub_attach(struct sub_client *c)
{
	if (c->outbox)
		return 0;
	c->outbox = weft_chan_new(outbox_size, sizeof(struct msg *));
	if (!c->outbox)
		return -ENOMEM;
	weft_spawn_opts opts = {.name = "redis-sub-writer"};
	c->writer = weft_spawn_ex(NULL, writer, c, &opts);
	if (!c->writer) {
		weft_chan_free(c->outbox);
		c->outbox = NULL;
		return -ENOMEM;
	}
	return 0;
}

int pubsub_send(struct sub_client *c, struct resp_out *out)
{
	if (out->len == 0)
		return 0;
	struct msg *m = msg_new(out->data, out->len);
	out->len = 0;
	if (!m)
		return -ENOMEM;
	int rc = weft_chan_send(c->outbox, &m);
	if (rc < 0)
		msg_unref(m);
	return rc;
}

/* -------------------------------------------------------------- registry */

static uint64_t hash_name(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h ^ (h >> 31);
}

struct pubsub *pubsub_new(void)
{
	struct pubsub *ps = calloc(1, sizeof *ps);
	if (!ps)
		return NULL;
	ps->nbuckets = 1024;
	ps->buckets = calloc(ps->nbuckets, sizeof *ps->buckets);
	if (!ps->buckets) {
		free(ps);
		return NULL;
	}
	weft_mutex_init(&ps->lock);
	return ps;
}

void pubsub_free(struct pubsub *ps)
{
	for (size_t b = 0; b < ps->nbuckets; b++) {
		struct channel *ch = ps->buckets[b];
		while (ch) {
			struct channel *next = ch->next;
			free(ch->subs);
			free(ch);
			ch = next;
		}
	}
	free(ps->buckets);
	free(ps->patterns);
	weft_mutex_destroy(&ps->lock);
	free(ps);
}

static struct channel **find_channel(struct pubsub *ps, const struct resp_arg *name)
{
	struct channel **p = &ps->buckets[hash_name(name->p, name->len) & (ps->nbuckets - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->len == name->len && !memcmp((*p)->name, name->p, name->len))
			break;
	return p;
}

static bool append_sub(struct channel *ch, struct sub_client *c)
{
	if (ch->nsubs == ch->cap) {
		size_t cap = ch->cap ? 2 * ch->cap : 4;
		struct sub_client **s = realloc(ch->subs, cap * sizeof *s);
		if (!s)
			return false;
		ch->subs = s;
		ch->cap = cap;
	}
	ch->subs[ch->nsubs++] = c;
	return true;
}

static void remove_sub(struct channel **slot, struct sub_client *c)
{
	struct channel *ch = *slot;
	for (size_t i = 0; i < ch->nsubs; i++)
		if (ch->subs[i] == c) {
			ch->subs[i] = ch->subs[--ch->nsubs];
			break;
		}
	if (ch->nsubs == 0) {
		*slot = ch->next;
		free(ch->subs);
		free(ch);
	}
}

/* The client's own list of names (channels or patterns). */
static ssize_t name_index(const struct resp_arg *names, size_t n, const struct resp_arg *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i].len == name->len && !memcmp(names[i].p, name->p, name->len))
			return (ssize_t)i;
	return -1;
}

static bool add_name(struct resp_arg **names, size_t *n, size_t *cap, const struct resp_arg *name)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 4;
		struct resp_arg *a = realloc(*names, c * sizeof *a);
		if (!a)
			return false;
		*names = a;
		*cap = c;
	}
	char *copy = malloc(name->len ? name->len : 1);
	if (!copy)
		return false;
	memcpy(copy, name->p, name->len);
	(*names)[(*n)++] = (struct resp_arg){copy, name->len};
	return true;
}

size_t pubsub_count(const struct sub_client *c)
{
	return c->nchannels + c->npatterns;
}

static void add_reply(struct resp_out *out, const char *kind, const struct resp_arg *name,
                      size_t count)
{
	resp_add_array(out, 3);
	resp_add_cstr(out, kind);
	if (name)
		resp_add_bulk(out, name->p, name->len);
	else
		resp_add_null(out);
	resp_add_int(out, (long long)count);
}

static bool subscribe_channel(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name)
{
	struct channel **slot = find_channel(ps, name);
	if (!*slot) {
		struct channel *ch = calloc(1, sizeof *ch + name->len);
		if (!ch)
			return false;
		memcpy(ch->name, name->p, name->len);
		ch->len = name->len;
		*slot = ch;
	}
	if (!append_sub(*slot, c) ||
	    !add_name(&c->channels, &c->nchannels, &c->cap_channels, name)) {
		remove_sub(slot, c);
		return false;
	}
	return true;
}

static bool subscribe_pattern(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name)
{
	if (ps->npatterns == ps->cap_patterns) {
		size_t cap = ps->cap_patterns ? 2 * ps->cap_patterns : 16;
		struct pattern_sub *p = realloc(ps->patterns, cap * sizeof *p);
		if (!p)
			return false;
		ps->patterns = p;
		ps->cap_patterns = cap;
	}
	if (!add_name(&c->patterns, &c->npatterns, &c->cap_patterns, name))
		return false;
	ps->patterns[ps->npatterns++] =
	        (struct pattern_sub){.client = c, .pattern = c->patterns[c->npatterns - 1]};
	return true;
}

void pubsub_subscribe(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name,
                      bool pattern, struct resp_out *out)
{
	weft_mutex_lock(&ps->lock);
	bool ok = true;
	if (pattern) {
		if (name_index(c->patterns, c->npatterns, name) < 0)
			ok = subscribe_pattern(ps, c, name);
	} else if (name_index(c->channels, c->nchannels, name) < 0) {
		ok = subscribe_channel(ps, c, name);
	}
	size_t count = pubsub_count(c);
	weft_mutex_unlock(&ps->lock);
	if (ok)
		add_reply(out, pattern ? "psubscribe" : "subscribe", name, count);
	else
		resp_add_error(out, "ERR out of memory");
}

/* Takes c off the registry's entry for one of its names. */
static void unlink_channel(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name)
{
	struct channel **slot = find_channel(ps, name);
	if (*slot)
		remove_sub(slot, c);
}

static void unlink_pattern(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name)
{
	for (size_t k = 0; k < ps->npatterns; k++)
		if (ps->patterns[k].client == c && ps->patterns[k].pattern.p == name->p) {
			ps->patterns[k] = ps->patterns[--ps->npatterns];
			break;
		}
}

/* ...and forgets the name. */
static void drop_channel(struct pubsub *ps, struct sub_client *c, size_t i)
{
	unlink_channel(ps, c, &c->channels[i]);
	free((void *)c->channels[i].p);
	c->channels[i] = c->channels[--c->nchannels];
}

static void drop_pattern(struct pubsub *ps, struct sub_client *c, size_t i)
{
	unlink_pattern(ps, c, &c->patterns[i]);
	free((void *)c->patterns[i].p);
	c->patterns[i] = c->patterns[--c->npatterns];
}

void pubsub_unsubscribe(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name,
                        bool pattern, struct resp_out *out)
{
	const char *kind = pattern ? "punsubscribe" : "unsubscribe";
	weft_mutex_lock(&ps->lock);
	struct resp_arg *names = pattern ? c->patterns : c->channels;
	size_t *n = pattern ? &c->npatterns : &c->nchannels;
	if (name) {
		ssize_t i = name_index(names, *n, name);
		if (i >= 0)
			(pattern ? drop_pattern : drop_channel)(ps, c, (size_t)i);
		add_reply(out, kind, name, pubsub_count(c));
	} else if (*n == 0) {
		add_reply(out, kind, NULL, pubsub_count(c));
	} else {
		/* In the order they were subscribed; the client's list is only
		   rebuilt (emptied) at the end. */
		size_t total = pubsub_count(c), all = *n;
		for (size_t i = 0; i < all; i++) {
			if (pattern)
				unlink_pattern(ps, c, &names[i]);
			else
				unlink_channel(ps, c, &names[i]);
			add_reply(out, kind, &names[i], total - i - 1);
		}
		for (size_t i = 0; i < all; i++)
			free((void *)names[i].p);
		*n = 0;
	}
	weft_mutex_unlock(&ps->lock);
}

/* Puts m in c's outbox without waiting; a full outbox gets the client cut
   off (its reader sees the socket shut). */
static bool deliver(struct sub_client *c, struct msg *m)
{
	if (atomic_load_explicit(&c->too_slow, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	if (weft_chan_try_send(c->outbox, &m) == 0)
		return true;
	msg_unref(m);
	atomic_store_explicit(&c->too_slow, true, memory_order_relaxed);
	shutdown(c->fd, SHUT_RDWR);
	return false;
}

static struct msg *encode(const char *kind, const struct resp_arg *pattern,
                          const struct resp_arg *channel, const struct resp_arg *message)
{
	struct resp_out o = {0};
	resp_add_array(&o, pattern ? 4 : 3);
	resp_add_cstr(&o, kind);
	if (pattern)
		resp_add_bulk(&o, pattern->p, pattern->len);
	resp_add_bulk(&o, channel->p, channel->len);
	resp_add_bulk(&o, message->p, message->len);
	struct msg *m = o.failed ? NULL : msg_new(o.data, o.len);
	resp_out_free(&o);
	return m;
}

long long pubsub_publish(struct pubsub *ps, const struct resp_arg *channel,
                         const struct resp_arg *message)
{
	long long reached = 0;
	weft_mutex_lock(&ps->lock);
	struct channel *ch = *find_channel(ps, channel);
	if (ch && ch->nsubs) {
		struct msg *m = encode("message", NULL, channel, message);
		for (size_t i = 0; m && i < ch->nsubs; i++)
			reached += deliver(ch->subs[i], m);
		if (m)
			msg_unref(m);
	}
	for (size_t i = 0; i < ps->npatterns; i++) {
		struct pattern_sub *p = &ps->patterns[i];
		if (!db_glob_match(p->pattern.p, p->pattern.len, channel->p, channel->len, false))
			continue;
		struct msg *m = encode("pmessage", &p->pattern, channel, message);
		if (m) {
			reached += deliver(p->client, m);
			msg_unref(m);
		}
	}
	weft_mutex_unlock(&ps->lock);
	return reached;
}

void pubsub_detach(struct pubsub *ps, struct sub_client *c)
{
	weft_shield_push(); /* also at shutdown: nobody may deliver to c afterwards */
	weft_mutex_lock(&ps->lock);
	while (c->nchannels)
		drop_channel(ps, c, c->nchannels - 1);
	while (c->npatterns)
		drop_pattern(ps, c, c->npatterns - 1);
	weft_mutex_unlock(&ps->lock);
	if (c->outbox) {
		weft_chan_close(c->outbox);
		weft_join(c->writer, NULL);
		struct msg *m;
		while (weft_chan_try_recv(c->outbox, &m) == 0)
			msg_unref(m);
		weft_chan_free(c->outbox);
		c->outbox = NULL;
	}
	weft_shield_pop();
	free(c->channels);
	free(c->patterns);
	c->channels = c->patterns = NULL;
	c->cap_channels = c->cap_patterns = 0;
}
