/*
 * A parker puts one OS thread to sleep until another unparks it: a futex
 * word with three states. An unpark that comes before the park is not lost
 * (the park then returns at once), and unparks do not accumulate.
 */
#ifndef WEFT_RUNTIME_PARK_H
#define WEFT_RUNTIME_PARK_H

#include <stdatomic.h>
#include <stdint.h>

struct weft__parker {
	_Alignas(64) _Atomic uint32_t state;
};

void weft__parker_init(struct weft__parker *p);
void weft__parker_park(struct weft__parker *p);

/* Parks for at most timeout_ns (UINT64_MAX: no limit); may return early. */
void weft__parker_park_timeout(struct weft__parker *p, uint64_t timeout_ns);
void weft__parker_unpark(struct weft__parker *p);

#endif
