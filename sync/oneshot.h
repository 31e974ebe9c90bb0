/*
 * The oneshot's part in weft_select (internal; sync/oneshot.c, used by the
 * select in sync/chan.c). A select arms each oneshot case with its
 * registration, disarms every armed case before it returns, and performs
 * the receive of the case that fired with weft__oneshot_take.
 */
#ifndef WEFT_SYNC_ONESHOT_H
#define WEFT_SYNC_ONESHOT_H

#include <stdbool.h>

#include <weft/sync.h>

struct weft__sel;

/* Registers sel's case case_i as the oneshot's receiver; true (and nothing
   registered that the sender will see) when the value or the close is
   already there: the case is ready. */
bool weft__oneshot_sel_arm(weft_oneshot *o, struct weft__sel *sel, unsigned case_i);

/* Withdraws the registration; returns once the sender no longer touches
   the select. */
void weft__oneshot_sel_disarm(weft_oneshot *o);

/* The receive, once the value or the close is there: 0 with the value in
   elem, or -EPIPE; the receiver leaves. */
int weft__oneshot_take(weft_oneshot *o, void *elem);

#endif
