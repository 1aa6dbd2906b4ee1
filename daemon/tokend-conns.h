/* SPDX-License-Identifier: MIT */
/* Who may hold a socket connection, and for how long: a cap per uid
 * ([Limits] MaxConnectionsPerUser), the last connections kept for root
 * (ReservedRootConnections: pam_jwt runs as root inside sshd and sudo), and
 * a deadline per request that sending slowly does not extend (RequestTimeout).
 * A sweeper thread shuts a connection down when its deadline passes. */
#pragma once

#include <stdbool.h>

#include "tokend-service.h"

typedef struct conn_table conn_table;
typedef struct conn_slot conn_slot;

typedef struct conn_limits {
        unsigned max_connections; /* every caller together (libmicrohttpd enforces it) */
        unsigned per_user;        /* per non-root uid */
        unsigned reserved_root;   /* of max_connections, only for uid 0; at most half is kept */
        unsigned timeout;         /* seconds for a request to arrive, or its answer to leave */
} conn_limits;

/* Start the table and its sweeper thread. Returns 0, -ENOMEM or -EAGAIN. */
int conn_table_new(const conn_limits *lim, conn_table **ret);

/* Stop the sweeper and free. Call once no slot is left (after the HTTP
 * server stopped). Accepts NULL. */
void conn_table_free(conn_table *t);

/* The kernel's credentials of the peer of a Unix socket. 0 or -errno. */
int conn_peer(int fd, td_caller *ret);

/* The peer of an admitted connection, as conn_admit() read it: a Unix
 * socket's SO_PEERCRED (taken by the kernel at connect(), fixed for the
 * connection's life) or a TCP peer's address, so that a request costs no
 * getsockname/getsockopt. false if c is NULL or was not admitted. */
bool conn_slot_peer(const conn_slot *c, td_caller *ret);

/* A new connection on fd (which stays the caller's to close). Always sets
 * *ret (NULL when out of memory): release it with conn_release() when the
 * connection closes. Returns true when admitted; its deadline is then armed
 * (RequestTimeout from now). false: refused (over a limit, or no peer
 * credentials), *st says why (TD_TOO_MANY_REQUESTS or TD_UNAVAILABLE), and
 * the caller answers and closes. */
bool conn_admit(conn_table *t, int fd, conn_slot **ret, td_status *st);

/* The connection is gone: its place and its uid's count are free again.
 * Its fd must still be open (it is closed after this). Accepts NULL. */
void conn_release(conn_slot *c);

/* Start a new RequestTimeout from now (a request is expected, or an answer
 * was queued); past it the sweeper shuts the socket down. Accepts NULL. */
void conn_deadline_arm(conn_slot *c);

/* No deadline while tokend itself works on the request (a suspended
 * connection waiting for a worker). Accepts NULL. */
void conn_deadline_disarm(conn_slot *c);
