/*
 * uring-echo-floor: the leanest echo server this machine allows, to measure
 * the floor weft-echo is compared against (docs/benchmarks.md). No
 * runtime, no tasks: N threads (SO_REUSEPORT listeners), each with one
 * io_uring (SINGLE_ISSUER | DEFER_TASKRUN), multishot accept, multishot
 * receive into a registered buffer ring, and the send straight from the
 * received buffer, which goes back to the ring when the send completes.
 * One io_uring_submit_and_wait per batch of completions.
 *
 *   uring-echo-floor [--port P] [--threads N]
 *
 * Runs until killed. Sends are assumed to complete whole (64-byte echo
 * loads); a short send closes the connection.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define NBUFS 4096
#define BUF_SIZE 4096
#define KIND_ACCEPT 1ull
#define KIND_RECV 2ull
#define KIND_SEND 3ull

static uint16_t port = 7001;

static uint64_t ud(uint64_t kind, int fd, unsigned bid)
{
	return kind << 56 | (uint64_t)bid << 32 | (uint32_t)fd;
}

static struct io_uring_sqe *sqe_of(struct io_uring *r)
{
	struct io_uring_sqe *s = io_uring_get_sqe(r);
	if (!s) {
		io_uring_submit(r);
		s = io_uring_get_sqe(r);
	}
	return s;
}

static int listener(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024)) {
		perror("uring-echo-floor: listen");
		exit(1);
	}
	return fd;
}

static void *serve(void *arg)
{
	(void)arg;
	struct io_uring r;
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
	                                     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE,
	                            .cq_entries = 8192};
	if (io_uring_queue_init_params(1024, &r, &p) < 0) {
		fprintf(stderr, "uring-echo-floor: io_uring setup failed\n");
		exit(1);
	}
	char *mem = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct io_uring_buf_ring *br =
	        mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = NBUFS};
	if (io_uring_register_buf_ring(&r, &reg, 0)) {
		fprintf(stderr, "uring-echo-floor: no buffer rings\n");
		exit(1);
	}
	int mask = io_uring_buf_ring_mask(NBUFS);
	for (unsigned i = 0; i < NBUFS; i++)
		io_uring_buf_ring_add(br, mem + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
		                      mask, (int)i);
	io_uring_buf_ring_advance(br, NBUFS);

	int lfd = listener();
	struct io_uring_sqe *s = sqe_of(&r);
	io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
	io_uring_sqe_set_data64(s, ud(KIND_ACCEPT, lfd, 0));
	for (;;) {
		io_uring_submit_and_wait(&r, 1);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0, returned = 0;
		io_uring_for_each_cqe(&r, head, cqe)
		{
			seen++;
			uint64_t u = cqe->user_data;
			int fd = (int)(uint32_t)u;
			unsigned kind = (unsigned)(u >> 56), bid = (unsigned)(u >> 32) & 0xffff;
			if (kind == KIND_ACCEPT) {
				if (cqe->res >= 0) {
					int one = 1;
					setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one,
					           sizeof one);
					s = sqe_of(&r);
					io_uring_prep_recv_multishot(s, cqe->res, NULL, 0, 0);
					s->flags |= IOSQE_BUFFER_SELECT;
					s->buf_group = 0;
					io_uring_sqe_set_data64(s, ud(KIND_RECV, cqe->res, 0));
				}
				if (!(cqe->flags & IORING_CQE_F_MORE)) {
					s = sqe_of(&r);
					io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
					io_uring_sqe_set_data64(s, ud(KIND_ACCEPT, lfd, 0));
				}
			} else if (kind == KIND_RECV) {
				if (cqe->res > 0) {
					unsigned b = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
					s = sqe_of(&r);
					io_uring_prep_send(s, fd, mem + (size_t)b * BUF_SIZE,
					                   (size_t)cqe->res, MSG_NOSIGNAL);
					io_uring_sqe_set_data64(s, ud(KIND_SEND, fd, b));
				}
				if (cqe->res <= 0 && cqe->res != -ENOBUFS) {
					close(fd);
				} else if (!(cqe->flags & IORING_CQE_F_MORE)) {
					s = sqe_of(&r); /* ended (ENOBUFS): arm again */
					io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
					s->flags |= IOSQE_BUFFER_SELECT;
					s->buf_group = 0;
					io_uring_sqe_set_data64(s, ud(KIND_RECV, fd, 0));
				}
			} else if (kind == KIND_SEND) {
				io_uring_buf_ring_add(br, mem + (size_t)bid * BUF_SIZE, BUF_SIZE,
				                      (unsigned short)bid, mask, (int)returned++);
				if (cqe->res < 0)
					shutdown(fd, SHUT_RDWR);
			}
		}
		io_uring_buf_ring_advance(br, (int)returned);
		io_uring_cq_advance(&r, seen);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = (uint16_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--workers"))
			threads = atoi(argv[i + 1]);
	}
	pthread_t t[64];
	for (int i = 1; i < threads && i < 64; i++)
		pthread_create(&t[i], NULL, serve, NULL);
	serve(NULL);
	return 0;
}
