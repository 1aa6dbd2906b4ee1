/* SPDX-License-Identifier: MIT */
/* The Unix-socket HTTP/1.1 + JSON front end (DESIGN.md "Unix socket API"),
 * served by libmicrohttpd with a thread pool, one epoll loop per core.
 * Translates requests to tokend-service calls and td_code values to HTTP
 * statuses in one place (http_status_of()). */
#pragma once

#include "tokend-config.h"
#include "tokend-service.h"
#include "tokend-workers.h"

typedef struct http_server http_server;
struct MHD_Connection; /* <microhttpd.h> */

typedef struct http_limits {
        size_t max_request_bytes;  /* body cap → 413 */
        unsigned timeout;          /* seconds for a request to arrive, or its answer to leave */
        unsigned max_connections;
        unsigned max_connections_per_user;  /* per non-root uid */
        unsigned reserved_root_connections; /* of max_connections, for uid 0 only */
        unsigned threads;          /* 0: one per core */
        int enable_docs;           /* serve GET /api */
        /* TLS (the [Network] listener): PEM in memory, borrowed and kept
         * alive by the caller until http_server_stop(); all NULL: plain
         * HTTP. trust (may be NULL): CA certificates for client certificates. */
        const char *tls_cert, *tls_key, *tls_trust;
        const char *name;          /* the front end, for metrics: "socket", "network" (static) */
        /* With tls_trust: the verified client certificate's subject into
         * buf (1) or none (0), e.g. tls_peer_subject(); NULL: never. */
        int (*peer_subject)(struct MHD_Connection *conn, char *buf, size_t size);
} http_limits;

/* The [Limits] of c as the HTTP front ends (socket, network) apply them;
 * no TLS. */
http_limits tokend_http_limits(const tokend_config *c);

/* Serve on the listening socket fd (ownership stays with the caller): an
 * AF_UNIX socket, or a TCP one of the [Network] listener, where a caller
 * is its client address (conn_peer). login_workers runs password checks.
 * Returns 0 or -errno. */
int http_server_start(tokend *t, workers *login_workers, int fd, const http_limits *lim, http_server **ret);

/* Stop accepting, let in-flight requests finish (at most grace seconds),
 * then stop. Accepts NULL. */
void http_server_stop(http_server *s, unsigned grace);

/* The HTTP status for a service code (the one place this mapping lives). */
unsigned http_status_of(td_code c);
