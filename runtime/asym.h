/*
 * Asymmetric barriers (internal): a store-then-load handshake whose fast
 * side, run on every use, costs plain stores and loads, and whose slow
 * side, run rarely, makes every thread of the process execute a full
 * barrier with membarrier(2). This is what lets the monitor take a stuck
 * worker's LIFO slot without the owner paying a fence per wake
 * (lifo.h). Userspace RCU and Folly's asymmetric fences work this way.
 *
 * The handshake: the fast side stores its flag, then (compiler barrier
 * only) loads the slow side's; the slow side stores its flag, calls
 * weft__asym_heavy_fence(), then loads the fast side's. After the heavy
 * fence either the fast side's store is visible to the slow side or the
 * fast side's load will see the slow side's store.
 *
 * ThreadSanitizer models neither the kernel's barrier nor fences: under
 * it both sides use seq_cst operations, which are correct on their own.
 */
#ifndef WEFT_RUNTIME_ASYM_H
#define WEFT_RUNTIME_ASYM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sanitize.h"

/* Orders of the handshake's flag accesses on either side: ORDER for the
   fast side's; RELEASE for a fast-side store whose value the slow side
   acts on, ACQUIRE for the slow side's load of it after the heavy fence. */
#ifdef WEFT__TSAN
#define WEFT__ASYM_ORDER memory_order_seq_cst
#define WEFT__ASYM_RELEASE memory_order_seq_cst
#define WEFT__ASYM_ACQUIRE memory_order_seq_cst
#else
#define WEFT__ASYM_ORDER memory_order_relaxed
#define WEFT__ASYM_RELEASE memory_order_release
#define WEFT__ASYM_ACQUIRE memory_order_acquire
#endif

/* Fast side: orders the caller's flag store before its next load (for the
   compiler; the hardware is ordered by the slow side's heavy fence). */
static inline void weft__asym_light_fence(void)
{
	atomic_signal_fence(memory_order_seq_cst);
}

/* Slow side: a full barrier on every running thread of the process. False
   when the kernel offers none (no membarrier): the caller must not rely on
   the handshake then. */
bool weft__asym_heavy_fence(void);

/* Makes the heavy fence ready: its registration waits for an RCU grace
   period (17 ms measured here), which must not fall into the first use.
   Idempotent; done by the monitor thread as it starts. */
void weft__asym_prepare(void);

#endif
