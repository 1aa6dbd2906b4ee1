/* SPDX-License-Identifier: MIT */
/* Sockets passed by systemd (socket activation, sd_listen_fds(3)), taken
 * once by tokend_startup() and sorted by FileDescriptorName=: "api" (or
 * tokend.socket's default name, or none at all) is the Unix API socket,
 * "network" the TCP listeners of [Network] (tokend-network.socket). Anything
 * else fails the start-up: tokend serves no socket it cannot account for. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "tokend-config.h"

typedef struct listen_fds {
        int api;                        /* listening AF_UNIX stream socket; -EBADF: none passed */
        int network[TOKEND_LISTEN_MAX]; /* listening AF_INET/AF_INET6 stream sockets */
        size_t n_network;
} listen_fds;

#define LISTEN_FDS_NONE ((listen_fds) { .api = -EBADF })

/* Take the sockets systemd passed (and unset $LISTEN_FDS & co., so that
 * PAM helpers do not see them), check each one's name, family, type and
 * listening state, make them non-blocking and sort them into *ret. Nothing
 * passed: *ret = LISTEN_FDS_NONE, returns 0. On an fd with an unknown name,
 * of the wrong kind, a second API socket or more than TOKEND_LISTEN_MAX
 * network sockets: logs which fd and why, closes them all, returns -EINVAL. */
int listen_fds_take(listen_fds *ret);

/* Close what no front end took (a front end that takes an fd sets its slot
 * to -EBADF or n_network to 0). Accepts LISTEN_FDS_NONE. */
void listen_fds_done(listen_fds *l);

/* The local address of socket fd as "ADDRESS:PORT" ("[ADDRESS]:PORT" for
 * IPv6, the [Network] Listen= syntax) into buf, and the address itself into
 * *ret_sa if not NULL. Returns 0 or -errno (buf then says "?"). */
int listen_fd_address(int fd, char buf[static TOKEND_LISTEN_WORD_MAX + 1], struct sockaddr_storage *ret_sa);

/* Whether a and b are the same IPv4/IPv6 address and port. */
bool listen_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
