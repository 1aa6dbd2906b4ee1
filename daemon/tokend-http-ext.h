/* SPDX-License-Identifier: MIT */
/* Endpoints that live outside tokend-http.c (the OAuth 2.0 endpoints, the
 * device approval page, the API explorer: tokend-oauth.c's table
 * http_ext_routes[]). tokend-http.c owns the connection: it reads the body
 * (MaxRequestBytes), attributes the caller, finds the route, calls its
 * handler on the HTTP thread, runs the handler's job on a worker when it
 * asks for one, and sends the http_reply. The handlers never see
 * tokend-http.c's internals, and it knows nothing of OAuth. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend-service.h"

struct MHD_Connection;

#define HTTP_REPLY_HEADERS 6U

/* An answer. body is malloc'ed (wiped on free when secret); header names
 * and content_type are static strings, values live in hdr_buf or are static. */
typedef struct http_reply {
        unsigned status;
        const char *content_type;
        char *body;
        bool secret;
        const char *hdr_name[HTTP_REPLY_HEADERS];
        const char *hdr_value[HTTP_REPLY_HEADERS];
        char hdr_buf[512];
        size_t hdr_used;
        /* CLOCK_MONOTONIC µs before which the answer must not leave (a failed
         * password login, td_status.not_before_usec); 0: at once. */
        int64_t not_before_usec;
        /* status 0 and st.code set: a failed service call, answered as the
         * socket API answers it ({"error","message"}, tokend-http.c's mapping). */
        td_status st;
        /* For the log line of an error answer: the error code and why. */
        const char *log_code;
        char log_message[160];
} http_reply;

/* Where a request's job runs. */
typedef enum http_ext_pool {
        HTTP_EXT_LOGIN, /* the password-check workers (PAM) */
        HTTP_EXT_STORE, /* the issue/refresh workers (group commits) */
} http_ext_pool;

typedef struct http_ext_req http_ext_req;
struct http_ext_req {
        tokend *t;
        td_caller caller;
        struct MHD_Connection *conn; /* headers and query arguments */
        const char *method, *url;
        const char *body; /* the whole body (may hold secrets), NUL-terminated; "" when none */
        size_t len;
        bool enable_docs; /* [API] EnableDocs= of this listener */
        /* Set by a handler that returns HTTP_EXT_RUN: called once on a worker
         * of pool, fills the reply; job_free (may be NULL) releases job_data
         * (wiping secrets) when the request is done, whether job ran or not. */
        void (*job)(http_ext_req *rq, http_reply *ret);
        void (*job_free)(void *job_data);
        void *job_data;
        http_ext_pool pool;
};

#define HTTP_EXT_DONE 0 /* the reply is filled */
#define HTTP_EXT_RUN 1  /* run rq->job on a worker of rq->pool, then send its reply */

typedef struct http_ext_route {
        const char *path;
        const char *method;
        /* On the HTTP thread; must not block. HTTP_EXT_DONE or HTTP_EXT_RUN;
         * -ENOMEM (nothing queued: the connection is dropped). */
        int (*fn)(http_ext_req *rq, http_reply *ret);
} http_ext_route;

/* The table (tokend-oauth.c). */
extern const http_ext_route http_ext_routes[];
extern const size_t http_ext_n_routes;

/* Release the reply's body and the request's job data. Idempotent. */
void http_ext_done(http_ext_req *rq, http_reply *reply);
