/*
 * Pub/sub: channels and patterns, and the queue of messages of each
 * subscribed client.
 *
 * A client that subscribes gets an outbox -- a bounded weft channel of
 * encoded replies -- and a writer task that sends what arrives there to
 * its socket. From then on everything the client is sent goes through the
 * outbox (its own command replies too, so that the order holds). PUBLISH
 * encodes the message once per channel (and once per matching pattern) and
 * puts a reference into each subscriber's outbox without waiting: a
 * subscriber whose outbox is full is too slow, and is disconnected rather
 * than allowed to hold the publisher (Redis's client-output-buffer-limit
 * for pubsub does the same).
 */
#ifndef WEFT_REDIS_PUBSUB_H
#define WEFT_REDIS_PUBSUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <weft.h>

#include "resp.h"

#define PUBSUB_OUTBOX 4096 /* messages a subscriber may have queued, by default */

/* The outbox size for subscribers from now on (weft-redis --outbox). */
void pubsub_set_outbox(size_t messages);

/* An encoded reply, shared by the outboxes it was put in. */
struct msg {
	_Atomic int refs;
	size_t len;
	char data[];
};

struct msg *msg_new(const void *data, size_t len);
void msg_unref(struct msg *m);

struct sub_client {
	int fd;
	weft_chan *outbox; /* of struct msg *; NULL until the first subscription */
	weft_task *writer;
	_Atomic bool too_slow;
	struct resp_arg *channels, *patterns; /* owned copies */
	size_t nchannels, npatterns, cap_channels, cap_patterns;
};

struct pubsub;

struct pubsub *pubsub_new(void);
void pubsub_free(struct pubsub *ps);

/* Starts c's outbox and writer if it has none: 0 or -ENOMEM. */
int pubsub_attach(struct sub_client *c);

/* Sends out's bytes through c's outbox (waiting while it is full), and
   empties out. -EPIPE if the writer is gone. */
int pubsub_send(struct sub_client *c, struct resp_out *out);

/* SUBSCRIBE / PSUBSCRIBE one name; replies appended to out. */
void pubsub_subscribe(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name,
                      bool pattern, struct resp_out *out);
/* UNSUBSCRIBE / PUNSUBSCRIBE one name, or all of them (name NULL). */
void pubsub_unsubscribe(struct pubsub *ps, struct sub_client *c, const struct resp_arg *name,
                        bool pattern, struct resp_out *out);

/* How many subscriptions c has (channels and patterns). */
size_t pubsub_count(const struct sub_client *c);

/* PUBLISH: the number of clients it reached. */
long long pubsub_publish(struct pubsub *ps, const struct resp_arg *channel,
                         const struct resp_arg *message);

/* The client leaves: unsubscribed from everything, its writer finished
   (what was queued is sent first), its outbox freed. */
void pubsub_detach(struct pubsub *ps, struct sub_client *c);

#endif
