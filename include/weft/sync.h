/*
 * weft sync: task-aware synchronization. Waits park the calling task, or
 * block the calling thread outside the runtime.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <weft/task.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The wait queue inside the types below: an implementation detail (its
   fields are not part of the API), in the header so that the types are
   complete and may live in a struct, a static or on a task's stack. */
struct weft_waitq_ {
	unsigned lock;
	void *head, *tail;
};

/*
 * The mutex: parks tasks, not threads; one atomic operation each to lock
 * and unlock when uncontended. Under contention it is unfair in the bounded
 * way of Go's sync.Mutex: a running task may take a lock that was just
 * released ahead of the parked waiters (which keeps the lock moving, where
 * a strict hand-off would put a park and a wake between every two owners),
 * the waiters queue FIFO, and once the first of them has waited more than
 * WEFT_MUTEX_HANDOFF_NS, unlock hands the lock straight to it, so no waiter
 * starves.
 *
 * weft_mutex_lock is a wait (cancellation, deadlines: weft.h); a cancelled
 * or timed-out lock leaves the mutex as it was and the next waiter
 * un-starved; once the lock was handed over it returns 0. From a plain
 * thread it blocks the thread. Unlocking a mutex the caller does not hold,
 * or destroying one that is locked or waited on, is undefined.
 */
#define WEFT_MUTEX_HANDOFF_NS 1000000ull
typedef struct weft_mutex {
	unsigned state;
	struct weft_waitq_ q;
} weft_mutex;

#define WEFT_MUTEX_INIT                                                                            \
	{                                                                                          \
		0,                                                                                 \
		{                                                                                  \
			0, 0, 0                                                                    \
		}                                                                                  \
	}

void weft_mutex_init(weft_mutex *m);
int weft_mutex_lock(weft_mutex *m);    /* 0, -ECANCELED, -ETIMEDOUT, -EINVAL */
int weft_mutex_trylock(weft_mutex *m); /* 0, -EBUSY, -EINVAL */
void weft_mutex_unlock(weft_mutex *m);
void weft_mutex_destroy(weft_mutex *m);

/*
 * Notify (Tokio's Notify): weft_notify_wait parks until a notification.
 * weft_notify_one wakes the longest waiter, or, with nobody waiting, stores
 * one permit (at most one) that the next wait takes at once: a notify_one
 * just before the wait is not lost. weft_notify_all wakes every current
 * waiter and stores nothing. A cancelled or timed-out wait consumes no
 * notification; one that was notified returns 0.
 */
typedef struct weft_notify {
	unsigned permit;
	uint64_t seq; /* waiters queued so far */
	struct weft_waitq_ q;
} weft_notify;

void weft_notify_init(weft_notify *n);
int weft_notify_wait(weft_notify *n); /* 0, -ECANCELED, -ETIMEDOUT, -EINVAL */
void weft_notify_one(weft_notify *n);
void weft_notify_all(weft_notify *n);
void weft_notify_destroy(weft_notify *n);

/*
 * The counting semaphore: acquire(n) takes n permits at once, waiting FIFO
 * -- a large request at the head holds back smaller ones behind it, so it
 * is not starved -- and try_acquire fails (-EAGAIN) while anyone waits.
 * A cancelled or timed-out acquire takes nothing; once granted it returns
 * 0. n must be at least 1 (-EINVAL).
 */
typedef struct weft_sem {
	uint64_t permits;
	struct weft_waitq_ q;
} weft_sem;

int weft_sem_init(weft_sem *s, uint64_t permits);  /* 0, -EINVAL for NULL */
int weft_sem_acquire(weft_sem *s, uint64_t n);     /* 0, -ECANCELED, -ETIMEDOUT, -EINVAL */
int weft_sem_try_acquire(weft_sem *s, uint64_t n); /* 0, -EAGAIN, -EINVAL */
void weft_sem_release(weft_sem *s, uint64_t n);
void weft_sem_destroy(weft_sem *s);

/*
 * The reader-writer lock: any number of readers or one writer. Waiters are
 * served in arrival order: a reader arriving while a writer waits queues
 * behind it, so writers do not starve, and the readers queued together
 * behind a writer are let in together when it unlocks. try_ variants fail
 * with -EBUSY where the waits would queue. Waits follow weft_mutex_lock's
 * rules (a cancelled or timed-out one takes nothing and strands nobody).
 * weft_rwlock_unlock releases whichever kind the caller holds.
 */
typedef struct weft_rwlock {
	uint64_t readers; /* holding it */
	unsigned writer;  /* held by a writer */
	struct weft_waitq_ q;
} weft_rwlock;

void weft_rwlock_init(weft_rwlock *l);
int weft_rwlock_rdlock(weft_rwlock *l); /* 0, -ECANCELED, -ETIMEDOUT, -EINVAL */
int weft_rwlock_wrlock(weft_rwlock *l);
int weft_rwlock_tryrdlock(weft_rwlock *l); /* 0, -EBUSY, -EINVAL */
int weft_rwlock_trywrlock(weft_rwlock *l);
void weft_rwlock_unlock(weft_rwlock *l);
void weft_rwlock_destroy(weft_rwlock *l);

/*
 * Channels: MPMC queues of fixed-size elements copied by value. Bounded
 * (capacity >= 1: send waits while it is full) or unbounded (capacity 0:
 * send never waits; -ENOMEM if the buffer cannot grow). A receiver waiting
 * when a message is sent gets it copied straight into its buffer; senders
 * and receivers each wait in FIFO order.
 *
 * Close wakes everyone: from then on send returns -EPIPE (a sender still
 * waiting has sent nothing), and recv returns what is left, then -EPIPE.
 * A cancelled or timed-out send has sent nothing; a cancelled or timed-out
 * recv has consumed nothing; once either took effect it returns 0. Plain
 * threads may send and receive too (they block). weft_chan_free with tasks
 * or threads still using the channel is undefined.
 */
typedef struct weft_chan weft_chan;

weft_chan *weft_chan_new(size_t capacity, size_t elem_size); /* NULL: elem_size 0, or no memory */
int weft_chan_send(weft_chan *c,
                   const void *elem); /* 0, -EPIPE, -ECANCELED, -ETIMEDOUT, -ENOMEM, -EINVAL */
int weft_chan_recv(weft_chan *c, void *elem);           /* 0, -EPIPE (closed and drained), ... */
int weft_chan_try_send(weft_chan *c, const void *elem); /* 0, -EAGAIN (full), -EPIPE, ... */
int weft_chan_try_recv(weft_chan *c, void *elem);       /* 0, -EAGAIN (empty), -EPIPE */
void weft_chan_close(weft_chan *c);
void weft_chan_free(weft_chan *c);

/*
 * Select (Go's select): waits until one of several operations -- channel
 * sends and receives, oneshot receives -- can take effect, performs
 * exactly that one, and returns its index. Cases are looked at from a
 * random starting point, so none starves. A case's `result` says how it
 * took effect: 0, or -EPIPE for a closed channel (a send on it sends
 * nothing; a receive on it found it drained) or a oneshot whose sender
 * left without sending. A oneshot case that took effect is its receive:
 * the receiver has left, as after weft_oneshot_recv() returned 0 or
 * -EPIPE; a oneshot case that did not stays in place (receive it later,
 * or drop it). timeout_ms: -1 waits forever, 0 only polls, else at most
 * that long (-ETIMEDOUT). Returns the index, -ETIMEDOUT, -ECANCELED, or
 * -EINVAL (no cases, more than WEFT_SELECT_MAX, a NULL channel, oneshot
 * or element, an unknown kind, one oneshot in two cases). A select that
 * returns an error has performed no case. Write cases with designated
 * initializers: {.kind = WEFT_SELECT_RECV, .chan = c, .elem = &v}.
 */
enum { WEFT_SELECT_SEND = 1, WEFT_SELECT_RECV = 2, WEFT_SELECT_ONESHOT = 3 };
#define WEFT_SELECT_MAX 64
typedef struct weft_oneshot weft_oneshot;
typedef struct weft_select_case {
	int kind; /* WEFT_SELECT_SEND, _RECV (chan) or _ONESHOT (oneshot) */
	union {
		weft_chan *chan;       /* SEND and RECV */
		weft_oneshot *oneshot; /* ONESHOT: a receive */
	};
	void *elem; /* the element to send, or where the received one goes */
	int result; /* set for the case that took effect */
} weft_select_case;

int weft_select(weft_select_case *cases, size_t n, int64_t timeout_ms);

/*
 * Task groups (structured concurrency, Tokio's JoinSet, libdill's bundles):
 * spawn children into a group, join them in the order they finish, cancel
 * them all. weft_group_destroy cancels every child still running and waits
 * for all of them (it is not interrupted by the caller's cancellation), so
 * no child outlives its group. A group is used by one owner at a time
 * (spawn, join_next and destroy from one task or thread; cancel_all from
 * anywhere).
 */
typedef struct weft_group {
	struct weft_waitq_ q; /* its lock guards the lists; joiners wait here */
	weft_runtime *rt;
	void *running, *done, *done_tail;
	size_t nrunning;
	unsigned cancelled;
} weft_group;

/* rt: where the children run (NULL: the calling task's runtime). */
int weft_group_init(weft_group *g, weft_runtime *rt); /* 0, -EINVAL */

/* Spawns fn(arg) into the group: 0; -EINVAL (NULL, or no runtime to spawn
   on); -ENOMEM when the child could not be spawned (out of memory, or its
   runtime is shutting down). After cancel_all, children still spawn, and
   are cancelled at once. */
int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);

/* Waits for the next child to finish and joins it: its join status (0, or
   WEFT_CANCELED if it was cancelled) with fn's return value in *result (if
   not NULL); -ECHILD when the group has no child left; -ECANCELED or
   -ETIMEDOUT for this wait (no child is lost: the next call gets it). */
int weft_group_join_next(weft_group *g, void **result);

/* Requests cancellation of every child, and of those spawned later. */
void weft_group_cancel_all(weft_group *g);

/* Cancels the children, waits for every one and frees them. */
void weft_group_destroy(weft_group *g);

/*
 * The oneshot: one value of elem_size bytes, one sender, one receiver.
 *
 * Each side leaves exactly once; the memory is freed when both have left.
 * The sender leaves by weft_oneshot_send() (whatever it returns) or
 * weft_oneshot_drop_sender(). The receiver leaves when weft_oneshot_recv()
 * returns 0 or -EPIPE, or by weft_oneshot_drop_receiver(); a recv that returns
 * -ECANCELED leaves the receiver in place (it may wait again or drop).
 * A oneshot receive may also be a case of weft_select().
 */

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

/* Receives without waiting: 0 (the receiver has left), -EPIPE (the sender
   left without sending; the receiver has left too), -EAGAIN (nothing yet),
   -EINVAL. */
int weft_oneshot_try_recv(weft_oneshot *o, void *elem);

/* The sender leaves without sending: the receiver gets -EPIPE. */
void weft_oneshot_drop_sender(weft_oneshot *o);

/* The receiver leaves without receiving: a later send gets -EPIPE. */
void weft_oneshot_drop_receiver(weft_oneshot *o);

#ifdef __cplusplus
}
#endif

#endif
