/*
 * weft: a work-stealing runtime of stackful tasks for C.
 *
 * The umbrella header: the whole public API. Conventions shared by every call:
 *
 *  - Calls that can fail return 0 (or a non-negative count) on success and a
 *    negative errno on failure. Nothing sets or reads errno as part of the API:
 *    a task may resume on another thread, where errno is another variable.
 *  - A "wait" is a call that may park the calling task. Every wait first checks
 *    for cancellation (-ECANCELED) without taking effect; once its operation has
 *    taken effect it returns success even if a cancellation arrives meanwhile
 *    (the next wait reports it). Called from a plain thread outside the runtime,
 *    a wait blocks the thread instead.
 *  - Constructors that return a pointer return NULL only for invalid arguments
 *    or out of memory; each says which.
 */
#ifndef WEFT_H
#define WEFT_H

#include <weft/blocking.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/observe.h>
#include <weft/runtime.h>
#include <weft/task.h>
#include <weft/sync.h>
#include <weft/time.h>

#endif
