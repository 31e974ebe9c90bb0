/*
 * weft networking helpers.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <netdb.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A listening TCP socket on host (NULL: every local address; a name is
   resolved with weft_getaddrinfo) and port (0: any free one), with
   SO_REUSEADDR and the backlog given (<= 0: SOMAXCONN). Returns the fd
   (non-blocking, close-on-exec) or a negative errno. */
int weft_tcp_listen(const char *host, uint16_t port, int backlog);

/* Connects to host:port, trying each address the name resolves to (a
   wait). Returns the connected fd or the last error (-ECONNREFUSED, ...);
   -EINVAL for a NULL host. */
int weft_tcp_connect(const char *host, uint16_t port);

/* getaddrinfo(3) run on the blocking pool, so that a slow resolver parks the
   calling task instead of blocking its worker (from a plain thread, or a
   blocking job, it is called directly). A wait: -ECANCELED / -ETIMEDOUT
   before or while it runs -- the lookup then finishes on the pool and its
   result is freed there. On success returns 0 and *res, to be released with
   freeaddrinfo(). Errors as negative errno: -EINVAL for NULL res, both host
   and service NULL, or bad hints (EAI_BADFLAGS, EAI_FAMILY, EAI_SOCKTYPE,
   EAI_SERVICE); -ENOENT for an unknown name (EAI_NONAME, EAI_NODATA,
   EAI_ADDRFAMILY); -EAGAIN for a temporary failure (EAI_AGAIN); -ENOMEM;
   -EIO for EAI_FAIL; the system error for EAI_SYSTEM. */
int weft_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res);

#ifdef __cplusplus
}
#endif

#endif
