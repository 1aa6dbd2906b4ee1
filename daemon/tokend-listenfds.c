/* SPDX-License-Identifier: MIT */
/* Socket activation: the fds systemd passed, sorted by name (tokend-listenfds.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "macro.h"
#include "strv.h"
#include "tokend-listenfds.h"
#include "tokend-log.h"

/* tokend.socket says FileDescriptorName=api; its default name (the unit's)
 * and "unknown" (no $LISTEN_FDNAMES: an older or hand-written launcher)
 * still mean the API socket, but only for an AF_UNIX socket. */
static bool name_is_api(const char *name) {
        return streq(name, "api") || streq(name, "tokend.socket") || streq(name, "unknown");
}

int listen_fd_address(int fd, char buf[static TOKEND_LISTEN_WORD_MAX + 1], struct sockaddr_storage *ret_sa) {
        struct sockaddr_storage sa = { 0 };
        socklen_t len = sizeof sa;
        char host[INET6_ADDRSTRLEN];
        const void *addr = NULL;
        uint16_t port = 0;

        strcpy(buf, "?");
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        if (sa.ss_family == AF_INET) {
                addr = &((const struct sockaddr_in *) &sa)->sin_addr;
                port = ntohs(((const struct sockaddr_in *) &sa)->sin_port);
        } else if (sa.ss_family == AF_INET6) {
                addr = &((const struct sockaddr_in6 *) &sa)->sin6_addr;
                port = ntohs(((const struct sockaddr_in6 *) &sa)->sin6_port);
        } else
                return -EAFNOSUPPORT;
        if (!inet_ntop(sa.ss_family, addr, host, sizeof host))
                return -errno;
        snprintf(buf, TOKEND_LISTEN_WORD_MAX + 1, sa.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
                 (unsigned) port);
        if (ret_sa)
                *ret_sa = sa;
        return 0;
}

bool listen_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *x = (const struct sockaddr_in *) a, *y = (const struct sockaddr_in *) b;
                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        if (a->ss_family == AF_INET6) {
                const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) a,
                                          *y = (const struct sockaddr_in6 *) b;
                return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
        }
        return false;
}

/* What fd is, for the log line that refuses it. */
static const char *fd_kind(int fd) {
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0)
                return "a listening AF_UNIX stream socket";
        if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0)
                return "a listening TCP socket";
        if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 0, 0) > 0)
                return "a TCP socket that is not listening";
        if (sd_is_socket_inet(fd, AF_UNSPEC, 0, -1, 0) > 0)
                return "an AF_INET/AF_INET6 socket that is not a stream (UDP?)";
        if (sd_is_socket(fd, AF_UNSPEC, 0, -1) > 0)
                return "a socket of another family or type";
        return "not a socket";
}

/* Sort fd (named name) into l; logs and returns -EINVAL if it does not fit. */
static int listen_fds_add(listen_fds *l, int fd, const char *name) {
        if (name_is_api(name)) {
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_error("socket activation: fd %d (name \"%s\") is %s, but the API socket must be a "
                                  "listening AF_UNIX stream socket%s; refusing to start", fd, name, fd_kind(fd),
                                  streq(name, "unknown") ? " (a [Network] listener needs FileDescriptorName=network)"
                                                         : "");
                        return -EINVAL;
                }
                if (l->api >= 0) {
                        log_error("socket activation: fd %d (name \"%s\") is a second API socket (fd %d is the "
                                  "first); refusing to start", fd, name, l->api);
                        return -EINVAL;
                }
                l->api = fd;
                return 0;
        }
        if (!streq(name, "network")) {
                log_error("socket activation: fd %d has the name \"%s\"; tokend takes \"api\" (the Unix API "
                          "socket) and \"network\" (the [Network] TCP listeners); refusing to start", fd, name);
                return -EINVAL;
        }
        if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
                log_error("socket activation: fd %d (name \"network\") is %s, but a [Network] listener must be "
                          "a listening TCP socket; refusing to start", fd, fd_kind(fd));
                return -EINVAL;
        }
        if (l->n_network >= TOKEND_LISTEN_MAX) {
                log_error("socket activation: more than %u sockets named \"network\"; refusing to start",
                          TOKEND_LISTEN_MAX);
                return -EINVAL;
        }
        l->network[l->n_network++] = fd;
        return 0;
}

int listen_fds_take(listen_fds *ret) {
        _cleanup_(strv_freep) char **names = NULL;
        listen_fds l = LISTEN_FDS_NONE;
        int n = sd_listen_fds_with_names(1, &names), r = 0;

        if (n < 0) {
                log_error("socket activation: cannot read $LISTEN_FDS: %s", strerror(-n));
                return n;
        }
        for (int i = 0; i < n && r == 0; i++) {
                int fd = SD_LISTEN_FDS_START + i, fl = fcntl(fd, F_GETFL);
                r = listen_fds_add(&l, fd, names && names[i] ? names[i] : "unknown");
                if (r == 0 && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
                        r = -errno;
                        log_error("socket activation: fd %d: %s", fd, strerror(-r));
                }
        }
        if (r < 0) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                return r;
        }
        *ret = l;
        return 0;
}

void listen_fds_done(listen_fds *l) {
        if (l->api >= 0)
                close(l->api);
        for (size_t i = 0; i < l->n_network; i++)
                if (l->network[i] >= 0)
                        close(l->network[i]);
        *l = LISTEN_FDS_NONE;
}
