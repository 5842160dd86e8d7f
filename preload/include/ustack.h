/*
 * ustack.h — the C ABI of libustack_preload.so: BSD socket calls on the ustack
 * userspace TCP/IP stack, for programs that link to it on purpose
 * (cc prog.c -I preload/include -L target/release -lustack_preload).
 *
 * Every function behaves as the C library call of the same name without the
 * `ustack_` prefix: same arguments, same return value, errno set on failure.
 * AF_INET and AF_INET6 (v4-mapped addresses only) sockets live on the stack; any
 * other descriptor (AF_UNIX, pipes, files) is passed to the C library, so
 * ustack_poll/ustack_select/ustack_epoll_wait wait on both kinds at once and
 * ustack_close closes either. Every ustack socket is a real kernel descriptor
 * number (an eventfd), so it never collides with a file's.
 *
 * The stack attaches to its link at the first ustack_socket(AF_INET...), from the
 * environment: USTACK_TAP (or USTACK_RAW), USTACK_IP (a.b.c.d/prefix), and
 * optionally USTACK_GATEWAY, USTACK_MAC, USTACK_MTU, USTACK_PCAP, USTACK_SEED,
 * USTACK_FAULTS (see docs/run.md). If it cannot attach, the socket calls fail with
 * the reason's errno and one line is printed on stderr.
 *
 * Define USTACK_REDEFINE_LIBC before including this header (after the system
 * headers) to make the plain names (socket, read, close, ...) mean the ustack_
 * ones, so one source builds against either.
 */
#ifndef USTACK_H
#define USTACK_H

#include <poll.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mmsghdr; /* <sys/socket.h> declares it under _GNU_SOURCE */

int ustack_socket(int domain, int type, int protocol);
int ustack_bind(int fd, const struct sockaddr *addr, socklen_t len);
int ustack_listen(int fd, int backlog);
int ustack_accept(int fd, struct sockaddr *addr, socklen_t *len);
int ustack_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int ustack_connect(int fd, const struct sockaddr *addr, socklen_t len);
int ustack_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int ustack_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int ustack_shutdown(int fd, int how);
ssize_t ustack_send(int fd, const void *buf, size_t len, int flags);
ssize_t ustack_recv(int fd, void *buf, size_t len, int flags);
ssize_t ustack_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *addr, socklen_t alen);
ssize_t ustack_recvfrom(int fd, void *buf, size_t len, int flags,
                        struct sockaddr *addr, socklen_t *alen);
ssize_t ustack_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t ustack_recvmsg(int fd, struct msghdr *msg, int flags);
int ustack_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags);
ssize_t ustack_read(int fd, void *buf, size_t len);
ssize_t ustack_write(int fd, const void *buf, size_t len);
ssize_t ustack_readv(int fd, const struct iovec *iov, int n);
ssize_t ustack_writev(int fd, const struct iovec *iov, int n);
ssize_t ustack_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
int ustack_close(int fd);
int ustack_dup(int fd);
int ustack_dup2(int oldfd, int newfd);
int ustack_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int ustack_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
/* F_GETFL, F_SETFL (O_NONBLOCK), F_GETFD, F_SETFD, F_DUPFD, F_DUPFD_CLOEXEC. */
int ustack_fcntl(int fd, int cmd, ...);
/* FIONBIO and FIONREAD. */
int ustack_ioctl(int fd, unsigned long request, ...);
int ustack_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
int ustack_select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout);
/* On an instance from the C library's epoll_create1(); LT, EPOLLET, EPOLLONESHOT,
 * EPOLLRDHUP. */
int ustack_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int ustack_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms);

#ifdef __cplusplus
}
#endif

#ifdef USTACK_REDEFINE_LIBC
#define socket ustack_socket
#define bind ustack_bind
#define listen ustack_listen
#define accept ustack_accept
#define accept4 ustack_accept4
#define connect ustack_connect
#define getsockname ustack_getsockname
#define getpeername ustack_getpeername
#define shutdown ustack_shutdown
#define send ustack_send
#define recv ustack_recv
#define sendto ustack_sendto
#define recvfrom ustack_recvfrom
#define sendmsg ustack_sendmsg
#define recvmsg ustack_recvmsg
#define read ustack_read
#define write ustack_write
#define readv ustack_readv
#define writev ustack_writev
#define close ustack_close
#define dup ustack_dup
#define dup2 ustack_dup2
#define setsockopt ustack_setsockopt
#define getsockopt ustack_getsockopt
#define fcntl ustack_fcntl
#define ioctl ustack_ioctl
#define poll ustack_poll
#define select ustack_select
#define epoll_ctl ustack_epoll_ctl
#define epoll_wait ustack_epoll_wait
#endif

#endif /* USTACK_H */
