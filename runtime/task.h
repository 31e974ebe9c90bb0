/*
 * The task header and its state word (internal).
 *
 * The scheduler only knows this header and its vtable (run, release); a
 * fiber is the one task kind today, and a stackless kind could be added
 * behind the same two entries.
 *
 * State word (one atomic, like Tokio's task/state.rs, adapted to tasks that
 * park themselves instead of being polled):
 *
 *   SCHEDULED     the task is runnable: in a run queue, or running. It is set
 *                 by whoever makes the task runnable (spawn, a wake of a
 *                 parked task) and cleared only by the worker that ran the
 *                 task, after the task's context is fully saved (park commit).
 *   NOTIFIED      a wake arrived while SCHEDULED: when the task next parks it
 *                 is put back on a run queue instead of sleeping.
 *   COMPLETE      fn returned; set once, never cleared.
 *   CANCELLED     cancellation requested (never set once COMPLETE).
 *   JOIN_INTEREST the handle has not been consumed.
 *   JOIN_WAITER   a joiner has stored its waker in t->joiner; whoever clears
 *                 the bit or sees COMPLETE next to it owns that waker.
 *   refcount      bits 8 and up: one for the task being alive (dropped when it
 *                 completes), one for the handle, one per stored waker.
 *
 * Invariants: a task is in at most one run queue, and only a task with
 * SCHEDULED set is; so it never runs on two workers at once. A wake of a
 * parked task (SCHEDULED clear) sets SCHEDULED and queues it; a wake of a
 * runnable task only sets NOTIFIED; the park commit sees NOTIFIED in the same
 * CAS that would clear SCHEDULED, so a wake racing a park is never lost.
 * Parks may therefore return without the awaited event (a stale NOTIFIED):
 * every wait loops on its condition.
 */
#ifndef WEFT_RUNTIME_TASK_H
#define WEFT_RUNTIME_TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/task.h>
#include <weft/time.h>

#include "fiber.h"

#define WEFT__T_SCHEDULED (1ull << 0)
#define WEFT__T_NOTIFIED (1ull << 1)
#define WEFT__T_COMPLETE (1ull << 2)
#define WEFT__T_CANCELLED (1ull << 3)
#define WEFT__T_JOIN_INTEREST (1ull << 4)
#define WEFT__T_JOIN_WAITER (1ull << 5)
#define WEFT__T_REF_ONE (1ull << 8)
#define WEFT__T_REF_MASK (~(WEFT__T_REF_ONE - 1))

#define WEFT__TASK_MAGIC 0x7466776bu
#define WEFT__BUDGET 128      /* waits per run before a yield (wait.c) */
#define WEFT__BUDGET_CHUNK 8  /* ...spent in chunks: the clock is read between two */
#define WEFT__SLICE_NS 250000 /* a run this long is preempted at its next chunk's end */

struct weft__thread;
struct weft__stack;

/* Whom to wake when a wait ends: a task (holding a reference to it) or a
   plain thread (a futex word on its stack). */
struct weft__waker {
	struct weft_task *task;
	_Atomic uint32_t *word;
};

struct weft__task_vtable {
	void (*run)(struct weft__thread *th, struct weft_task *t);
	void (*release)(struct weft_task *t);
};

/* Laid out by who touches what, because the header moves between the
   spawner's, the runner's and the joiner's caches a line at a time: the first
   line is what starting, finishing and joining a task read; the second the
   rest of a task's bookkeeping, with what a wait records for the task dump;
   the third its saved context, and what joins and diagnostics read. */
struct weft_task {
	_Alignas(64) _Atomic uint64_t state;
	uint32_t magic;
	int line; /* spawn site line */
	const struct weft__task_vtable *vt;
	struct weft_runtime *rt;
	weft_fn fn;
	void *arg;
	void *result;
	struct weft__stack *stack; /* NULL until the first run */

	struct weft__thread *pinned_to;
	struct weft_task *qnext; /* injector / inbox / batch link */
	uint64_t id;
	const void *wait_obj; /* task dump: see below */
	uint32_t stack_size;
	int32_t budget;
	uint32_t wait; /* enum weft__wait_kind | arg << 8, of its last wait */
	uint32_t runs; /* runs that ended (switches away) */
	uint16_t pin_depth;
	uint16_t shield_depth;
	bool cancelled_at_return; /* CANCELLED as fn returned: join's answer */
	bool pinned_spawn;        /* spawned with opts.pinned: pin_depth starts at 1 */
	_Atomic bool registered;  /* in the registry: it has yielded or parked */
	const char *file;         /* spawn site */

	struct weft__fiber fiber;
	struct weft_deadline *scope; /* innermost deadline scope, or NULL */
	uintptr_t joiner;            /* a waker, packed (weft__waker_pack) */
	uint32_t reg_shard;          /* where the registry keeps it */
	uint32_t reg_slot;
	uint32_t wait_since_ms; /* weft__coarse_ms() when it began the wait */
	uint32_t run_periods;
	const char *name;
};

/* Three lines, as laid out above; a fourth would move every header to a
   larger allocation class (measured: +5% instructions in ping_pong).
   Sanitizer builds carry their fiber handles in it and may be larger. */
#if !defined(WEFT__ASAN) && !defined(WEFT__TSAN)
_Static_assert(sizeof(struct weft_task) == 192, "the task header outgrew three cache lines");
#endif

/* The task dump's fields -- wait, wait_obj, wait_since_ms, runs,
   run_periods -- are written by the task itself and read by a dump on any
   thread (relaxed atomic accesses): what it last waited on (the kind in
   the low 8 bits of wait, a small argument above; wait_obj the object, or
   an fd), since when, how often it ran, and in how many of the monitor's
   periods it was caught running (monitor.h: an unbiased estimate of its
   run time, with no clock read per switch). */

/* A waker in one word, for the joiner: a task pointer (64-byte aligned), or
   a thread's word pointer with the low bit set. */
static inline uintptr_t weft__waker_pack(struct weft__waker w)
{
	return w.task ? (uintptr_t)w.task : (uintptr_t)w.word | 1;
}

static inline struct weft__waker weft__waker_unpack(uintptr_t v)
{
	if (v & 1)
		return (struct weft__waker){NULL, (_Atomic uint32_t *)(v & ~(uintptr_t)1)};
	return (struct weft__waker){(struct weft_task *)v, NULL};
}

enum weft__wait_kind {
	WEFT__WAIT_NONE,
	WEFT__WAIT_MUTEX,
	WEFT__WAIT_RWLOCK_READ,
	WEFT__WAIT_RWLOCK_WRITE,
	WEFT__WAIT_SEM, /* arg: permits asked (at most 2^24 - 1 shown) */
	WEFT__WAIT_NOTIFY,
	WEFT__WAIT_CHAN_SEND,
	WEFT__WAIT_CHAN_RECV,
	WEFT__WAIT_SELECT, /* arg: cases */
	WEFT__WAIT_ONESHOT,
	WEFT__WAIT_JOIN, /* obj: the joined task's id (the task may be gone when the dump reads it)
	                  */
	WEFT__WAIT_GROUP,
	WEFT__WAIT_FD, /* obj: fd; arg: the events (EPOLLIN, EPOLLOUT) */
	WEFT__WAIT_IO, /* obj: fd; arg: the io_uring opcode */
	WEFT__WAIT_ACCEPT,
};

static inline uint64_t weft__task_state(struct weft_task *t)
{
	return atomic_load_explicit(&t->state, memory_order_acquire);
}

/* A task's identity (id, name, spawn site) is read by the stall monitor
   while the task runs, and a header may be recycled for a new task while
   the monitor still looks: the fields are written and read with relaxed
   atomic accesses (plain moves), so that reading a recycled header is a
   stale value, not a data race. */
static inline void weft__task_set_id(struct weft_task *t, uint64_t id)
{
	__atomic_store_n(&t->id, id, __ATOMIC_RELAXED);
}

static inline void weft__task_set_site(struct weft_task *t, const char *name, const char *file,
                                       int line)
{
	__atomic_store_n(&t->name, name, __ATOMIC_RELAXED);
	__atomic_store_n(&t->file, file, __ATOMIC_RELAXED);
	__atomic_store_n(&t->line, line, __ATOMIC_RELAXED);
}

static inline void weft__task_ref(struct weft_task *t)
{
	atomic_fetch_add_explicit(&t->state, WEFT__T_REF_ONE, memory_order_relaxed);
}

void weft__task_unref(struct weft_task *t);

/* Makes a parked task runnable, or marks a runnable one NOTIFIED. The caller
   guarantees t is alive (holds a reference). */
void weft__task_wake(struct weft_task *t);

/* Wakes and drops the caller's reference. */
static inline void weft__task_wake_by_val(struct weft_task *t)
{
	weft__task_wake(t);
	weft__task_unref(t);
}

/* Fills a new header: runnable (SCHEDULED), with its handle and its own
   reference, no stack, no name. */
void weft__task_init(struct weft_task *t, struct weft_runtime *rt,
                     const struct weft__task_vtable *vt, weft_fn fn, void *arg, const char *file,
                     int line);

/* fn returned (t->result and t->cancelled_at_return are written): publishes
   COMPLETE and wakes the joiner. The caller still holds the task's own
   reference and drops it after its own bookkeeping. */
void weft__task_finish(struct weft_task *t);

/* The fiber task kind's entry points, for the worker loop. */
extern const struct weft__task_vtable weft__fiber_task_vtable;

#endif
