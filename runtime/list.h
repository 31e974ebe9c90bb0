/*
 * An intrusive doubly-linked list (internal): the links live in the listed
 * objects, so adding and removing allocate nothing and take O(1). Used for
 * the timer wheel's slots and due list, the blocking pool's idle threads and
 * an fd's waiters. No locking: each user says what protects its lists.
 */
#ifndef WEFT_RUNTIME_LIST_H
#define WEFT_RUNTIME_LIST_H

#include <stddef.h>

struct weft__dlink {
	struct weft__dlink *prev, *next;
};

struct weft__dlist {
	struct weft__dlink *head, *tail;
};

#define weft__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void weft__dlist_init(struct weft__dlist *l)
{
	l->head = l->tail = NULL;
}

static inline void weft__dlist_push_head(struct weft__dlist *l, struct weft__dlink *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

static inline void weft__dlist_push_tail(struct weft__dlist *l, struct weft__dlink *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

static inline void weft__dlist_unlink(struct weft__dlist *l, struct weft__dlink *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
}

/* Appends all of src to dst (src is left as it was: reset it). */
static inline void weft__dlist_splice_tail(struct weft__dlist *dst, const struct weft__dlist *src)
{
	if (!src->head)
		return;
	if (dst->tail) {
		dst->tail->next = src->head;
		src->head->prev = dst->tail;
	} else {
		dst->head = src->head;
	}
	dst->tail = src->tail;
}

#endif
