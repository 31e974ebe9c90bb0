/*
 * Stack overflow detection; see overflow.h.
 *
 * The handler only uses async-signal-safe calls (write, abort, sigaction)
 * and formats its message by hand.
 */
#include "overflow.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"
#include "task.h"
#include "tls.h"

#define ALTSTACK_SIZE (64u * 1024)

static struct sigaction prev_segv;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

struct msg {
	char buf[512];
	size_t len;
};

static void put(struct msg *m, const char *s)
{
	while (*s && m->len < sizeof m->buf - 1)
		m->buf[m->len++] = *s++;
}

static void put_u64(struct msg *m, uint64_t v)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i > 0 && m->len < sizeof m->buf - 1)
		m->buf[m->len++] = tmp[--i];
}

static void report_overflow(struct weft_task *t)
{
	struct msg m = {.len = 0};
	put(&m, "weft: stack overflow in task ");
	put_u64(&m, t->id);
	put(&m, " '");
	put(&m, t->name ? t->name : "");
	put(&m, "' spawned at ");
	put(&m, t->file ? t->file : "?");
	put(&m, ":");
	put_u64(&m, (uint64_t)t->line);
	put(&m, " (stack ");
	put_u64(&m, t->stack->size);
	put(&m, " bytes; give it a larger weft_spawn_opts.stack_size)\n");
	ssize_t r = write(STDERR_FILENO, m.buf, m.len);
	(void)r;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct weft__tls *tls = weft__tls();
	struct weft_task *t = tls->task;
	if (t && t->stack && weft__stack_guard_hit(t->stack, si->si_addr)) {
		report_overflow(t);
		abort();
	}
	if (prev_segv.sa_flags & SA_SIGINFO) {
		prev_segv.sa_sigaction(sig, si, uc);
		return;
	}
	if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN) {
		prev_segv.sa_handler(sig);
		return;
	}
	/* Default action: restore it; returning re-executes the faulting access. */
	signal(sig, SIG_DFL);
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &prev_segv);
}

void *weft__overflow_thread_init(void)
{
	pthread_once(&install_once, install);
	void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                 -1, 0);
	if (mem == MAP_FAILED)
		return NULL;
	stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(mem, ALTSTACK_SIZE);
		return NULL;
	}
	return mem;
}

void weft__overflow_thread_fini(void *altstack)
{
	if (!altstack)
		return;
	stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
	sigaltstack(&ss, NULL);
	munmap(altstack, ALTSTACK_SIZE);
}
