/*
 * weft_getaddrinfo: the resolver on the blocking pool.
 *
 * The lookup runs in a job; the caller joins it. A caller whose wait ends
 * first (cancelled, or its deadline passed) leaves, and the job frees the
 * result when it is done: whichever of the two finishes second frees the
 * request, decided by one atomic exchange.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <weft/blocking.h>
#include <weft/net.h>
#include <weft/task.h>

#include "../runtime/tls.h"
#include "../runtime/wait.h"

struct lookup {
	char *host, *service; /* copies: the caller may leave before the job runs */
	struct addrinfo hints;
	bool has_hints;
	struct addrinfo *res;
	int rc; /* getaddrinfo's return, errno for EAI_SYSTEM */
	int sys_errno;
	bool resolved;    /* false: cancelled before it started */
	_Atomic int done; /* set by the first of the job and the caller to finish */
};

static void lookup_free(struct lookup *l)
{
	if (l->res)
		freeaddrinfo(l->res);
	free(l->host);
	free(l->service);
	free(l);
}

static int to_errno(int rc, int sys_errno)
{
	switch (rc) {
	case 0:
		return 0;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_FAIL:
		return -EIO;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENOENT;
	case EAI_SYSTEM:
		return sys_errno ? -sys_errno : -EIO;
	default: /* EAI_BADFLAGS, EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE */
		return -EINVAL;
	}
}

static void resolve(struct lookup *l)
{
	errno = 0;
	l->rc = getaddrinfo(l->host, l->service, l->has_hints ? &l->hints : NULL, &l->res);
	l->sys_errno = errno;
	if (l->rc != 0)
		l->res = NULL;
	l->resolved = true;
}

static void *lookup_job(void *arg)
{
	struct lookup *l = arg;
	if (!weft_is_cancelled()) /* cancelled before it started: nobody waits */
		resolve(l);
	if (atomic_exchange_explicit(&l->done, 1, memory_order_acq_rel))
		lookup_free(l); /* the caller left */
	return NULL;
}

static char *dup_or_null(const char *s, bool *failed)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

int weft_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res)
{
	if (!res || (!host && !service))
		return -EINVAL;
	*res = NULL;
	int rc = weft__wait_check();
	if (rc)
		return rc;
	struct lookup *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	bool failed = false;
	l->host = dup_or_null(host, &failed);
	l->service = dup_or_null(service, &failed);
	if (hints) {
		l->hints = *hints;
		l->has_hints = true;
		/* Only the fields getaddrinfo reads from hints. */
		l->hints.ai_addrlen = 0;
		l->hints.ai_addr = NULL;
		l->hints.ai_canonname = NULL;
		l->hints.ai_next = NULL;
	}
	if (failed) {
		lookup_free(l);
		return -ENOMEM;
	}
	struct weft__tls *tls = weft__tls();
	if (!tls->task) {
		/* A plain thread or a blocking job may block: no pool needed. */
		resolve(l);
	} else {
		weft_task *job = weft_spawn_blocking(lookup_job, l);
		if (!job) {
			lookup_free(l);
			return weft_is_cancelled() ? -ECANCELED : -ENOMEM;
		}
		rc = weft_join(job, NULL);
		if (rc < 0) {
			/* Our wait ended first: the job frees the request,
			   unless it finished meanwhile (and skips the lookup if
			   it has not started). */
			weft_cancel(job);
			weft_detach(job);
			if (atomic_exchange_explicit(&l->done, 1, memory_order_acq_rel))
				lookup_free(l);
			return rc;
		}
	}
	rc = l->resolved ? to_errno(l->rc, l->sys_errno) : -ECANCELED;
	*res = l->res;
	l->res = NULL;
	lookup_free(l);
	return rc;
}
