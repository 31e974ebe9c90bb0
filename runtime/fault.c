/*
 * Fault injection for tests; see fault.h.
 */
#include "fault.h"

_Atomic int weft__fault_countdown[WEFT__FAULT_SITES];

void weft__fault_arm(enum weft__fault_site site, int n)
{
	atomic_store_explicit(&weft__fault_countdown[site], n > 0 ? n : 0, memory_order_relaxed);
}
