/*
 * weft_signal_wait: signals as something a task waits for.
 *
 * The first wait for a signal installs a handler for it that writes one
 * byte into that signal's own pipe; waiting is reading a byte from the pipe
 * (by readiness, like any pipe), so each delivery wakes one waiter and a
 * delivery nobody waits for yet is kept for the next wait. The handler may
 * run on any thread -- a worker, a pool thread, the program's main thread
 * -- so no signal mask has to be arranged anywhere, and the handler only
 * calls write(2) (async-signal-safe) and keeps errno. A pipe per signal
 * rather than one shared: a waiter draining a shared pipe could take the
 * byte another signal's waiter was about to see.
 *
 * Installing the handler replaces the signal's previous disposition for
 * the rest of the process: after weft_signal_wait(SIGINT), Ctrl-C no longer
 * terminates the program; it is the program's to handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <weft/io.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"

static int pipes[NSIG][2];
static _Atomic int write_end[NSIG]; /* the handler's fd plus one: 0 until set up */
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static void relay(int signo)
{
	int saved = errno;
	int fd = atomic_load_explicit(&write_end[signo], memory_order_relaxed) - 1;
	char b = 1;
	if (fd >= 0 && write(fd, &b, 1) < 0) {
		/* EAGAIN: the pipe is full of undelivered signals already */
	}
	errno = saved;
}

/* The read end of signo's pipe, setting it and the handler up at first. */
static int relay_fd(int signo)
{
	pthread_mutex_lock(&setup_lock);
	int rc = 0;
	if (!atomic_load_explicit(&write_end[signo], memory_order_relaxed)) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = relay;
		sa.sa_flags = SA_RESTART;
		sigfillset(&sa.sa_mask);
		if (pipe2(pipes[signo], O_NONBLOCK | O_CLOEXEC) < 0) {
			rc = -errno;
		} else {
			atomic_store_explicit(&write_end[signo], pipes[signo][1] + 1,
			                      memory_order_release);
			if (sigaction(signo, &sa, NULL) < 0) {
				rc = -errno;
				atomic_store_explicit(&write_end[signo], 0, memory_order_release);
				close(pipes[signo][0]);
				close(pipes[signo][1]);
			}
		}
	}
	if (rc == 0)
		rc = pipes[signo][0];
	pthread_mutex_unlock(&setup_lock);
	return rc;
}

int weft_signal_wait(int signo)
{
	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP ||
	    signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE)
		return -EINVAL;
	int rc = weft__tls()->task ? weft__wait_enter() : weft__wait_check();
	if (rc)
		return rc;
	int fd = relay_fd(signo);
	if (fd < 0)
		return fd;
	for (;;) {
		char b;
		ssize_t n = read(fd, &b, 1);
		if (n == 1)
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((rc = weft_wait_fd(fd, POLLIN)) < 0)
			return rc;
	}
}
