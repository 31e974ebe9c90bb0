/*
 * weft sync: task-aware synchronization. Waits park the calling task, or
 * block the calling thread outside the runtime.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The oneshot: one value of elem_size bytes, one sender, one receiver.
 *
 * Each side leaves exactly once; the memory is freed when both have left.
 * The sender leaves by weft_oneshot_send() (whatever it returns) or
 * weft_oneshot_drop_sender(). The receiver leaves when weft_oneshot_recv()
 * returns 0 or -EPIPE, or by weft_oneshot_drop_receiver(); a recv that returns
 * -ECANCELED leaves the receiver in place (it may wait again or drop).
 */
typedef struct weft_oneshot weft_oneshot;

/* NULL: elem_size 0, or out of memory. */
weft_oneshot *weft_oneshot_new(size_t elem_size);

/* Copies elem in and wakes the receiver. Never waits. Returns 0, -EPIPE if the
   receiver had already left (the value is dropped), -EINVAL for NULL
   arguments (the sender has then not left). */
int weft_oneshot_send(weft_oneshot *o, const void *elem);

/* Waits for the value and copies it to elem. Returns 0; -EPIPE if the sender
   left without sending; -ECANCELED (nothing consumed); -EINVAL for NULL
   arguments. */
int weft_oneshot_recv(weft_oneshot *o, void *elem);

/* The sender leaves without sending: the receiver gets -EPIPE. */
void weft_oneshot_drop_sender(weft_oneshot *o);

/* The receiver leaves without receiving: a later send gets -EPIPE. */
void weft_oneshot_drop_receiver(weft_oneshot *o);

#ifdef __cplusplus
}
#endif

#endif
