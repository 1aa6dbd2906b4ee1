/* SPDX-License-Identifier: MIT */
/* The front-end table of tokend and the adapters of the existing front
 * ends: the D-Bus API (tokend-bus.c) and the Unix-socket HTTP API
 * (tokend-http.c, on the socket from systemd or one opened here); the
 * [Network] listener is in tokend-network.c. */
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tokend-bus.h"
#include "tokend-frontend.h"
#include "tokend-http.h"
#include "tokend-log.h"
#include "tokend-network.h"

/* ---- D-Bus ----------------------------------------------------------- */

static int bus_start(tokend *t, void **ret_state) {
        bus_server *b = NULL;
        int r = bus_server_start(t, t->login_workers, &b);
        if (r < 0)
                return r;
        *ret_state = b;
        return 0;
}

static void bus_stop(tokend *t _unused_, void *state, unsigned grace _unused_) {
        bus_server_stop(state); /* needs the workers: its logins may still run */
}

/* Started before the socket: it installs the DeviceRevoked hook. Bus=none
 * is handled (and logged) by bus_server_start: a running entry with a NULL
 * state. A bus that
 * cannot be reached does not stop tokend: the socket (pam_jwt's way in)
 * keeps serving; see io.tokend.Tokend1(5). */
static const tokend_frontend_ops frontend_bus = {
        .name = "D-Bus",
        .roles = TOKEND_ROLE_MASK(TOKEND_ROLE_STANDALONE) | TOKEND_ROLE_MASK(TOKEND_ROLE_ISSUER),
        .optional = true,
        .start = bus_start,
        .stop = bus_stop,
};

/* ---- the Unix socket ------------------------------------------------- */

typedef struct socket_frontend {
        int fd;
        bool owned;  /* ours (not systemd's): unlink and close at stop */
        char *path;
        http_server *http;
} socket_frontend;

/* The API socket from systemd (socket activation, checked and taken out of
 * t->inherited), else our own. */
static int open_socket(tokend *t, const char *path, mode_t mode, bool *ret_owned) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (t->inherited.api >= 0) {
                int fd = t->inherited.api;
                t->inherited.api = -EBADF;
                *ret_owned = false;
                return fd;
        }
        if (strlen(path) >= sizeof sa.sun_path) {
                log_error("socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A live socket means another tokend: refuse. A stale one is removed. */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        log_error("%s exists and is not a socket; not touching it", path);
                        close(fd);
                        return -EEXIST;
                }
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                        close(probe);
                        close(fd);
                        log_error("%s: another tokend is already listening", path);
                        return -EADDRINUSE;
                }
                if (probe >= 0)
                        close(probe);
                (void) unlink(path);
        }
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0 || chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                log_error("cannot listen on %s: %s", path, strerror(-r));
                close(fd);
                return r;
        }
        *ret_owned = true;
        return fd;
}

static void socket_stop(tokend *t _unused_, void *state, unsigned grace) {
        socket_frontend *s = state;
        if (!s)
                return;
        http_server_stop(s->http, grace);
        if (s->owned) {
                (void) unlink(s->path);
                close(s->fd);
        }
        free(s->path);
        free(s);
}

static int socket_start(tokend *t, void **ret_state) {
        const tokend_config *c = t->config;
        socket_frontend *s = calloc(1, sizeof *s);
        if (!s || !(s->path = strdup(c->socket_path))) {
                free(s);
                return -ENOMEM;
        }
        s->fd = open_socket(t, c->socket_path, c->socket_mode, &s->owned);
        if (s->fd < 0) {
                int r = s->fd;
                free(s->path);
                free(s);
                return r;
        }
        http_limits lim = tokend_http_limits(c);
        lim.name = "socket";
        int r = http_server_start(t, t->login_workers, s->fd, &lim, &s->http);
        if (r < 0) {
                log_error("cannot start the HTTP server on %s", c->socket_path);
                socket_stop(t, s, 0);
                return r;
        }
        *ret_state = s;
        return 0;
}

/* pam_jwt's way in: every role serves it. */
static const tokend_frontend_ops frontend_socket = {
        .name = "socket",
        .roles = TOKEND_ROLES_ALL,
        .start = socket_start,
        .stop = socket_stop,
};

/* ---- the table ------------------------------------------------------- */

const tokend_frontend_ops *const tokend_frontends[] = {
        &frontend_bus,
        /* Before the socket: once the socket answers, the listener the
         * administrator asked for is up (or tokend has stopped). */
        &tokend_frontend_network,
        &frontend_socket,
};
const size_t tokend_n_frontends = ELEMENTSOF(tokend_frontends);
_Static_assert(ELEMENTSOF(tokend_frontends) <= TOKEND_FRONTENDS_MAX, "raise TOKEND_FRONTENDS_MAX");
