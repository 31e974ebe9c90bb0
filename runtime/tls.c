/*
 * The one thread-local variable of the runtime; see tls.h for why it is only
 * reached through a non-inlinable accessor.
 */
#include "tls.h"

#include <errno.h>

static __thread struct weft__tls tls_slot;

__attribute__((noinline)) WEFT__NOIPA struct weft__tls *weft__tls(void)
{
	struct weft__tls *p = &tls_slot;
	__asm__ volatile("" : "+r"(p));
	return p;
}

__attribute__((noinline)) WEFT__NOIPA int *weft__errno(void)
{
	int *p = &errno;
	__asm__ volatile("" : "+r"(p));
	return p;
}
