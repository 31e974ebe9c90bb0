/*
 * The runtime's short internal locks: pthread mutexes that spin a little
 * before sleeping (PTHREAD_MUTEX_ADAPTIVE_NP). Their critical sections are a
 * few list operations; sleeping in the kernel on contention (several us
 * here) would cost far more than waiting for the holder.
 */
#ifndef WEFT_RUNTIME_LOCK_H
#define WEFT_RUNTIME_LOCK_H

#include <pthread.h>

static inline void weft__lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

#endif
