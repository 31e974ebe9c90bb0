/*
 * Stack overflow reports: a task that runs off the bottom of its stack hits
 * the guard region; the SIGSEGV handler, running on the worker's alternate
 * signal stack (the task's own stack is exhausted), names the task and
 * aborts. Faults that are not a guard hit go to the handler that was
 * installed before weft's (or the default action).
 */
#ifndef WEFT_RUNTIME_OVERFLOW_H
#define WEFT_RUNTIME_OVERFLOW_H

/* Installs the process-wide handler (once) and this thread's alternate
   signal stack; returns the stack to pass to _fini (NULL if none). */
void *weft__overflow_thread_init(void);
void weft__overflow_thread_fini(void *altstack);

#endif
