/*
 * The task dump's lines (internal; runtime/dump.c), for weft_dump_tasks and
 * shutdown's report of the tasks that outlived the grace period.
 */
#ifndef WEFT_RUNTIME_DUMP_H
#define WEFT_RUNTIME_DUMP_H

#include <stddef.h>

struct weft_runtime;

/* One line per live task that has started, to fd; returns how many. */
size_t weft__dump_task_lines(struct weft_runtime *rt, int fd);

#endif
