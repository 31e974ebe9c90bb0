/*
 * weft-fetch: fetches URLs concurrently with libcurl's multi interface, its
 * event loop driven by weft -- the proof that a foreign C library that does
 * its own I/O runs on weft without blocking a worker.
 *
 *   weft-fetch [--workers N] URL...
 *
 * How: libcurl says which sockets it wants watched (CURLMOPT_SOCKETFUNCTION)
 * and when it wants to be called back (CURLMOPT_TIMERFUNCTION). The sockets
 * go into a private epoll instance; the driver task waits for that epoll
 * fd to become readable with weft_wait_fd -- one readiness wait however
 * many sockets curl has -- under a deadline scope set to curl's timeout,
 * then tells curl what happened (curl_multi_socket_action). The waits park
 * the task, not the worker. Prints one line per URL ("URL: HTTP 200, 13
 * bytes, 0.4 ms") and exits 0 when every transfer succeeded with a 2xx.
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <weft.h>

struct transfer {
	const char *url;
	size_t bytes;
	uint64_t start_ns;
};

struct fetch {
	char **urls;
	int n;
	int epfd;
	CURLM *multi;
	uint64_t timer_ns; /* when curl's timer expires (weft_now_ns); UINT64_MAX: none */
	int failures;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	((struct transfer *)arg)->bytes += size * n;
	return size * n;
}

/* CURLMOPT_SOCKETFUNCTION: keep the private epoll in step with curl. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *arg, void *sockp)
{
	(void)e;
	(void)sockp;
	struct fetch *f = arg;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(f->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
	                                   (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
	                         .data.fd = s};
	if (epoll_ctl(f->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT)
		epoll_ctl(f->epfd, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants to be called without I/O. */
static int on_timer(CURLM *m, long timeout_ms, void *arg)
{
	(void)m;
	((struct fetch *)arg)->timer_ns =
	        timeout_ms < 0 ? UINT64_MAX : weft_now_ns() + (uint64_t)timeout_ms * 1000000u;
	return 0;
}

static void report_done(struct fetch *f)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(f->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct transfer *t;
		long code = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		double ms = (double)(weft_now_ns() - t->start_ns) / 1e6;
		if (msg->data.result != CURLE_OK) {
			printf("%s: %s\n", t->url, curl_easy_strerror(msg->data.result));
			f->failures++;
		} else {
			printf("%s: HTTP %ld, %zu bytes, %.1f ms\n", t->url, code, t->bytes, ms);
			if (code < 200 || code > 299)
				f->failures++;
		}
		curl_multi_remove_handle(f->multi, msg->easy_handle);
		curl_easy_cleanup(msg->easy_handle);
	}
}

/* Waits for curl's sockets or its timer, whichever comes first, and tells
   curl. */
static int drive_once(struct fetch *f)
{
	int running = 0;
	weft_deadline d;
	bool timed = f->timer_ns != UINT64_MAX;
	if (timed)
		weft_deadline_push_at_ns(&d, f->timer_ns);
	int r = weft_wait_fd(f->epfd, POLLIN);
	if (timed)
		weft_deadline_pop(&d);
	if (r == -ETIMEDOUT) {
		f->timer_ns = UINT64_MAX; /* one-shot: curl sets the next one */
		curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		return running;
	}
	if (r < 0) {
		fprintf(stderr, "weft-fetch: waiting: %s\n", strerror(-r));
		return -1;
	}
	struct epoll_event ev[16];
	int n = epoll_wait(f->epfd, ev, 16, 0);
	for (int i = 0; i < n; i++) {
		int mask = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
		           (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
		           (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
		curl_multi_socket_action(f->multi, ev[i].data.fd, mask, &running);
	}
	if (n == 0) /* readiness gone meanwhile: let curl look */
		curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	return running;
}

static void *fetch_all(void *arg)
{
	struct fetch *f = arg;
	struct transfer *ts = calloc((size_t)f->n, sizeof *ts);
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	f->multi = curl_multi_init();
	if (!ts || f->epfd < 0 || !f->multi) {
		fprintf(stderr, "weft-fetch: out of resources\n");
		f->failures = f->n;
		free(ts);
		return NULL;
	}
	f->timer_ns = UINT64_MAX;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	for (int i = 0; i < f->n; i++) {
		ts[i] = (struct transfer){.url = f->urls[i], .start_ns = weft_now_ns()};
		CURL *e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, f->urls[i]);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &ts[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &ts[i]);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_multi_add_handle(f->multi, e);
	}
	int running = 1;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	report_done(f);
	while (running > 0) {
		running = drive_once(f);
		report_done(f);
	}
	if (running < 0)
		f->failures = f->n;
	curl_multi_cleanup(f->multi);
	close(f->epfd);
	free(ts);
	return NULL;
}

int main(int argc, char **argv)
{
	weft_config cfg;
	weft_config_init(&cfg);
	struct fetch f = {0};
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			cfg.workers = (unsigned)atoi(argv[++i]);
		} else {
			int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
			fprintf(help ? stdout : stderr, "usage: weft-fetch [--workers N] URL...\n"
			                                "  Fetches the URLs concurrently with "
			                                "libcurl's multi interface, driven\n"
			                                "  by weft_wait_fd and weft deadlines; one "
			                                "line per URL; exit status 0\n"
			                                "  when every transfer got a 2xx.\n");
			return help ? 0 : 2;
		}
	}
	f.urls = argv + i;
	f.n = argc - i;
	if (f.n == 0) {
		fprintf(stderr, "weft-fetch: no URL (see --help)\n");
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	int r = weft_run(fetch_all, &f, &cfg, NULL);
	curl_global_cleanup();
	if (r < 0) {
		fprintf(stderr, "weft-fetch: %s\n", strerror(-r));
		return 1;
	}
	return f.failures ? 1 : 0;
}
