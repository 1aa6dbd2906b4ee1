/* SPDX-License-Identifier: MIT */
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "str-escape.h"
#include "tokend-conns.h"
#include "tokend-http.h"
#include "tokend-form.h"
#include "tokend-http-ext.h"
#include "tokend-log.h"
#include "tokend-longpoll.h"
#include "tokend-metrics.h"
#include "tokend-openapi.h"
#include "tokend.h"

#define JSON_BODY_MAX_DEPTH 8U
#define MAX_AUDIENCES 16U
/* Issue/refresh worker threads. Each rotation waits for its group commit
 * (fdatasync); with this many in flight they share one (measured: 2
 * threads ~750 rotations/s, 16 ~2,000/s, 64 ~3,100/s on 2 cores). */
#define STORE_THREADS 64U
/* Bodies over MaxRequestBytes but under this are read and dropped before the 413. */
#define TOO_BIG_DRAIN_BYTES (1024U * 1024U)

struct http_server {
        tokend *t;
        workers *workers;       /* password checks (shared with the bus) */
        workers *store_workers; /* issue and refresh: many threads, so that
                                 * concurrent rotations share a group commit */
        struct MHD_Daemon *mhd;
        http_limits lim;
        conn_table *conns; /* who may connect; request deadlines */
        /* Answers held back until td_status.not_before_usec (failed
         * logins): a list sorted by that time, resumed by delay_thread.
         * One entry per suspended connection at most: bounded by
         * MaxConnections, no allocation. */
        pthread_mutex_t delay_lock;
        pthread_cond_t delay_cond; /* on CLOCK_MONOTONIC */
        struct request *delayed;
        bool delay_stop;
        bool delay_running;
        pthread_t delay_thread;
        /* Set under feed_lock once the server stops: a feed request no
         * longer waits (see http_server_stop). */
        bool stopping;
        pthread_mutex_t feed_lock; /* stopping vs a feed request suspending */
};

typedef enum req_state {
        REQ_NEW = 0,
        REQ_BODY,
        REQ_ASYNC_PENDING,
        REQ_ASYNC_DONE,
        REQ_FEED_WAIT,  /* suspended in the long poll of the revocation feed */
        REQ_FEED_READY, /* woken: answer with the feed as it is now */
} req_state;

/* Per-request state, freed (body wiped) in request_completed(). */
typedef struct request {
        http_server *srv;
        struct MHD_Connection *conn;
        req_state state;
        char *body;
        size_t len, cap;
        bool too_big;
        td_caller caller;
        /* async job (login, issue, refresh): its body, and the function
         * that parses it and calls the service on a worker thread */
        json_t *job_json;
        td_code (*job)(struct request *rq, const json_t *j);
        td_code code;
        td_status st;
        td_tokens tokens;
        struct request *next_delayed;
        /* an endpoint of http_ext_routes[] (tokend-http-ext.h): its request and answer */
        const http_ext_route *ext;
        http_ext_req ext_rq;
        http_reply reply;
        int64_t feed_after;
        int64_t started_usec;      /* for the latency histogram */
        char subject[256];         /* caller.subject points here (a verified client certificate) */
        const char *endpoint;      /* the route's path (static), NULL: none */
} request;

unsigned http_status_of(td_code c) {
        switch (c) {
        case TD_OK: return 200;
        case TD_INVALID_REQUEST:
        case TD_INVALID_CREDENTIALS: return 400;
        case TD_INVALID_TOKEN:
        case TD_TOKEN_EXPIRED:
        case TD_TOKEN_REVOKED: return 401;
        case TD_FORBIDDEN: return 403;
        case TD_NOT_FOUND: return 404;
        case TD_TOO_MANY_REQUESTS: return 429;
        case TD_UNAVAILABLE: return 503;
        case TD_INTERNAL:
        default: return 500;
        }
}

static void free_secret(void *p) {
        erase_and_free(p);
}

/* The conn_slot of a connection (its MHD socket context), or NULL. */
static conn_slot *slot_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

/* Queue body (taken) with n_hdr extra headers (NULL names are skipped). */
static enum MHD_Result queue_body_hdrs(struct MHD_Connection *conn, unsigned status, const char *ctype, char *body,
                                       bool secret, const char *const *hdr, const char *const *val, size_t n_hdr) {
        struct MHD_Response *resp;
        size_t len = body ? strlen(body) : 0;
        enum MHD_Result ret;

        /* A secret body (tokens) is not copied: MHD sends from it and hands
         * it back to free_secret() once the answer is gone. */
        if (secret && body) {
                resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_secret);
                if (!resp)
                        free_secret(body);
        } else if (body) { /* handed over, not copied: MHD free()s it with the response */
                resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        free(body);
        } else
                resp = MHD_create_response_from_buffer(0, (char *) "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (ctype)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        for (size_t i = 0; i < n_hdr; i++)
                if (hdr[i])
                        MHD_add_response_header(resp, hdr[i], val[i]);
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        conn_deadline_arm(slot_of(conn)); /* the answer, too, leaves within RequestTimeout */
        return ret;
}

static enum MHD_Result queue_body(struct MHD_Connection *conn, unsigned status, const char *ctype, char *body,
                                  bool secret, const char *extra_hdr, const char *extra_val) {
        return queue_body_hdrs(conn, status, ctype, body, secret, &extra_hdr, &extra_val, 1);
}

static enum MHD_Result queue_json(struct MHD_Connection *conn, unsigned status, json_t *j, bool secret) {
        char *s = NULL;
        int r = td_json_dump_compact(j, &s);
        json_decref(j);
        if (r < 0)
                return MHD_NO;
        return queue_body(conn, status, "application/json", s, secret, NULL, NULL);
}

/* {"error","message"} answer, logged with the caller. extra_hdr (may be
 * NULL) adds one header, e.g. Allow on 405; 429 and 503 always get Retry-After. */
static enum MHD_Result queue_error_hdr(request *rq, unsigned status, const char *code, const char *message,
                                       int64_t retry_after, const char *extra_hdr, const char *extra_val) {
        json_t *j = json_pack("{s:s,s:s}", "error", code, "message", message);
        char *s = NULL, ra[32], who[TD_CALLER_NAME_MAX];

        log_info("HTTP %u %s for %s: %s", status, code, td_caller_name(&rq->caller, who), message);
        if (!j || td_json_dump_compact(j, &s) < 0) {
                json_decref(j);
                return MHD_NO;
        }
        json_decref(j);
        if (status == 429 || status == 503) {
                snprintf(ra, sizeof ra, "%lld", (long long) (retry_after > 0 ? retry_after : 1));
                extra_hdr = MHD_HTTP_HEADER_RETRY_AFTER;
                extra_val = ra;
        }
        return queue_body(rq->conn, status, "application/json", s, false, extra_hdr, extra_val);
}

static enum MHD_Result queue_error(request *rq, unsigned status, const char *code, const char *message,
                                   int64_t retry_after) {
        return queue_error_hdr(rq, status, code, message, retry_after, NULL, NULL);
}

static enum MHD_Result queue_status(request *rq, const td_status *st) {
        return queue_error(rq, http_status_of(st->code), td_code_to_string(st->code), st->message,
                           st->retry_after);
}

/* ---- body helpers ---------------------------------------------------- */

static bool content_type_is_json(struct MHD_Connection *conn) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct)
                return false;
        size_t l = strlen("application/json");
        return strncasecmp(ct, "application/json", l) == 0 && (ct[l] == 0 || ct[l] == ';' || ct[l] == ' ');
}

/* Parse the body as a JSON object; on failure queue the 4xx and return
 * NULL with *ret_result set. */
static json_t *body_json(request *rq, enum MHD_Result *ret_result) {
        json_t *j = NULL;
        const char *err = NULL;
        char msg[200];

        if (!content_type_is_json(rq->conn)) {
                *ret_result = queue_error(rq, 415, "invalid_request", "Content-Type must be application/json", 0);
                return NULL;
        }
        int r = td_json_parse_object(rq->body ? rq->body : "", rq->len, rq->srv->lim.max_request_bytes,
                                  JSON_BODY_MAX_DEPTH, &j, &err);
        if (r < 0) {
                snprintf(msg, sizeof msg, "request body is not a valid JSON object: %s", err ? err : "parse error");
                *ret_result = queue_error(rq, r == -E2BIG ? 413 : 400, "invalid_request", msg, 0);
                return NULL;
        }
        return j;
}

/* Optional string member: absent/null → NULL; other types → error. */
static int member_str(const json_t *o, const char *key, const char **ret) {
        const json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = json_string_value(v);
        return 0;
}

/* "audience": "sudo" or ["sshd","login"] → NULL-terminated vector in buf. */
static int member_audience(const json_t *o, const char *buf[static MAX_AUDIENCES + 1], bool *ret_present) {
        const json_t *v = json_object_get(o, "audience");
        *ret_present = false;
        if (!v || json_is_null(v))
                return 0;
        if (json_is_string(v)) {
                buf[0] = json_string_value(v);
                buf[1] = NULL;
        } else if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= MAX_AUDIENCES) {
                size_t i;
                const json_t *e;
                json_array_foreach(v, i, e) {
                        if (!json_is_string(e))
                                return -EBADMSG;
                        buf[i] = json_string_value(e);
                }
                buf[json_array_size(v)] = NULL;
        } else
                return -EBADMSG;
        *ret_present = true;
        return 0;
}

#define BAD_MEMBER(rq, name) queue_error(rq, 400, "invalid_request", "member \"" name "\" has the wrong type", 0)

/* ---- endpoints ------------------------------------------------------- */

static enum MHD_Result answer_tokens(request *rq, td_code c, const td_status *st, td_tokens *tok) {
        if (c != TD_OK)
                return queue_status(rq, st);
        json_t *j = td_tokens_to_json(tok);
        td_tokens_done(tok);
        if (!j)
                return MHD_NO;
        return queue_json(rq->conn, 200, j, true);
}

/* The worker's answer is ready: let MHD call on_request again to send it. */
static void finish_async(request *rq) {
        atomic_thread_fence(memory_order_release);
        rq->state = REQ_ASYNC_DONE;
        MHD_resume_connection(rq->conn);
}

static void delay_answer(http_server *s, request *rq) {
        pthread_mutex_lock(&s->delay_lock);
        if (s->delay_stop) { /* shutting down: answer now */
                pthread_mutex_unlock(&s->delay_lock);
                finish_async(rq);
                return;
        }
        request **p = &s->delayed;
        while (*p && (*p)->st.not_before_usec <= rq->st.not_before_usec)
                p = &(*p)->next_delayed;
        rq->next_delayed = *p;
        *p = rq;
        pthread_cond_signal(&s->delay_cond);
        pthread_mutex_unlock(&s->delay_lock);
}

static void *delay_thread(void *data) {
        http_server *s = data;

        pthread_mutex_lock(&s->delay_lock);
        for (;;) {
                request *rq = s->delayed;
                if (rq && (s->delay_stop || rq->st.not_before_usec <= td_monotonic_usec())) {
                        s->delayed = rq->next_delayed;
                        pthread_mutex_unlock(&s->delay_lock);
                        finish_async(rq);
                        pthread_mutex_lock(&s->delay_lock);
                        continue;
                }
                if (s->delay_stop)
                        break;
                if (!rq)
                        pthread_cond_wait(&s->delay_cond, &s->delay_lock);
                else {
                        struct timespec ts = { .tv_sec = rq->st.not_before_usec / 1000000,
                                               .tv_nsec = (rq->st.not_before_usec % 1000000) * 1000 };
                        (void) pthread_cond_timedwait(&s->delay_cond, &s->delay_lock, &ts);
                }
        }
        pthread_mutex_unlock(&s->delay_lock);
        return NULL;
}

/* ---- jobs run off the HTTP threads: parse j (already JSON), call the
 * service, leave the answer in rq->code/st/tokens. A member of the wrong
 * type is a TD_INVALID_REQUEST like any other (→ 400 invalid_request). */

static td_code job_fail(request *rq, td_code c, const char *message) {
        rq->st.code = c;
        snprintf(rq->st.message, sizeof rq->st.message, "%s", message);
        return c;
}

static td_code job_login(request *rq, const json_t *j) {
        td_login_req lr = {
                .username = json_string_value(json_object_get(j, "username")),
                .password = json_string_value(json_object_get(j, "password")),
                .device_name = json_string_value(json_object_get(j, "device_name")),
                .device_key = json_string_value(json_object_get(j, "device_key")),
        };
        static const char *const members[] = { "username", "password", "device_name", "device_key" };
        const char *s, *aud[MAX_AUDIENCES + 1];
        bool have_aud;
        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                if (member_str(j, members[i], &s) < 0)
                        return job_fail(rq, TD_INVALID_REQUEST, "members of a login must be strings");
        if (member_audience(j, aud, &have_aud) < 0)
                return job_fail(rq, TD_INVALID_REQUEST, "audience must be a string or an array of strings");
        lr.audience = have_aud ? aud : NULL;
        return td_login(rq->srv->t, &rq->caller, &lr, &rq->tokens, &rq->st);
}

/* The optional "ttl" member (seconds, ≥ 1): 0 and *ret when fine or absent
 * (*ret = 0), -EINVAL otherwise. */
static int member_ttl(const json_t *j, int64_t *ret) {
        const json_t *ttl = json_object_get(j, "ttl");
        *ret = 0;
        if (!ttl || json_is_null(ttl))
                return 0;
        return td_json_object_get_int_range(j, "ttl", 1, INT32_MAX, ret) < 0 ? -EINVAL : 0;
}

static td_code job_issue(request *rq, const json_t *j) {
        const char *aud[MAX_AUDIENCES + 1];
        bool have_aud;
        td_issue_req ir = { 0 };

        if (member_str(j, "user", &ir.user) < 0 || member_str(j, "device_name", &ir.device_name) < 0 ||
            member_str(j, "device_key", &ir.device_key) < 0 || member_audience(j, aud, &have_aud) < 0)
                return job_fail(rq, TD_INVALID_REQUEST, "user, device_name, device_key must be strings, "
                               "audience a string or an array of strings");
        ir.audience = have_aud ? aud : NULL;
        if (member_ttl(j, &ir.ttl) < 0)
                return job_fail(rq, TD_INVALID_REQUEST, "ttl must be a positive integer (seconds)");
        return td_issue(rq->srv->t, &rq->caller, &ir, &rq->tokens, &rq->st);
}

static td_code job_refresh(request *rq, const json_t *j) {
        const char *aud[MAX_AUDIENCES + 1];
        bool have_aud;
        td_refresh_req fr = { .htu = "/api/auth/refresh" };

        if (member_str(j, "refresh_token", &fr.refresh_token) < 0 || member_str(j, "device_id", &fr.device_id) < 0 ||
            member_str(j, "proof", &fr.proof) < 0 || member_audience(j, aud, &have_aud) < 0)
                return job_fail(rq, TD_INVALID_REQUEST, "refresh_token, device_id, proof must be strings");
        fr.audience = have_aud ? aud : NULL;
        if (member_ttl(j, &fr.ttl) < 0)
                return job_fail(rq, TD_INVALID_REQUEST, "ttl must be a positive integer (seconds)");
        return td_refresh(rq->srv->t, &rq->caller, &fr, &rq->tokens, &rq->st);
}

static void async_job(void *data) {
        request *rq = data;
        rq->code = rq->job(rq, rq->job_json);
        if (rq->st.not_before_usec > td_monotonic_usec())
                delay_answer(rq->srv, rq);
        else
                finish_async(rq);
}

/* Suspend the connection and run job(j) on w; on_request answers once the
 * connection is resumed. Takes the reference to j. */
static enum MHD_Result run_async(request *rq, workers *w, td_code (*job)(request *, const json_t *), json_t *j) {
        rq->job = job;
        rq->job_json = j;
        rq->state = REQ_ASYNC_PENDING;
        MHD_suspend_connection(rq->conn);
        if (workers_submit(w, async_job, rq) < 0) {
                /* Answer from the resumed call, never on a suspended connection. */
                rq->code = job_fail(rq, TD_UNAVAILABLE, "too many requests in progress, try again");
                finish_async(rq);
        }
        return MHD_YES;
}

static enum MHD_Result handle_login(request *rq) {
        enum MHD_Result res;
        json_t *j = body_json(rq, &res);
        return j ? run_async(rq, rq->srv->workers, job_login, j) : res;
}

static enum MHD_Result handle_issue(request *rq) {
        enum MHD_Result res;
        json_t *j;

        if (rq->len == 0 && !MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))
                j = json_object(); /* an empty body means "all defaults" */
        else if (!(j = body_json(rq, &res)))
                return res;
        return j ? run_async(rq, rq->srv->store_workers, job_issue, j) : MHD_NO;
}

static enum MHD_Result handle_refresh(request *rq) {
        enum MHD_Result res;
        json_t *j = body_json(rq, &res);
        return j ? run_async(rq, rq->srv->store_workers, job_refresh, j) : res;
}

static enum MHD_Result handle_logout(request *rq) {
        td_status st = { 0 };
        const char *b = http_bearer_of(rq->conn);
        if (!b)
                return queue_error(rq, 401, "invalid_token", "logout needs an Authorization: Bearer access token", 0);
        if (td_logout(rq->srv->t, &rq->caller, b, &st) != TD_OK)
                return queue_status(rq, &st);
        return queue_body(rq->conn, 204, NULL, NULL, false, NULL, NULL);
}

static enum MHD_Result handle_verify(request *rq) {
        enum MHD_Result res;
        td_verify_req vr = { 0 };
        td_introspection in = { 0 };
        td_status st = { 0 };
        _cleanup_(json_decrefp) json_t *j = body_json(rq, &res);
        if (!j)
                return res;
        if (member_str(j, "token", &vr.token) < 0 || member_str(j, "user", &vr.user) < 0 ||
            member_str(j, "service", &vr.service) < 0 || member_str(j, "rhost", &vr.rhost) < 0 ||
            member_str(j, "tty", &vr.tty) < 0)
                return queue_error(rq, 400, "invalid_request", "token, user, service, rhost, tty must be strings", 0);
        if (td_verify(rq->srv->t, &rq->caller, &vr, &in, &st) != TD_OK)
                return queue_status(rq, &st);
        json_t *a = td_introspection_to_json(&in);
        td_introspection_done(&in);
        return a ? queue_json(rq->conn, 200, a, false) : MHD_NO;
}

/* ?limit=N&cursor=C of a listing. A limit that is not a plain positive
 * decimal becomes -1, which the service refuses with the allowed range. */
static td_page_req page_of(struct MHD_Connection *conn) {
        const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
        td_page_req pg = { .cursor = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "cursor") };
        if (l) {
                size_t n = strspn(l, "0123456789");
                pg.limit = n == 0 || n > 9 || l[n] || l[0] == '0' ? -1 : (int64_t) strtoll(l, NULL, 10);
        }
        return pg;
}

/* GET /api/devices and GET /api/audit: ?user=&limit=&cursor=. */
static enum MHD_Result handle_listing(request *rq, td_code (*list)(tokend *, const td_caller *, const char *,
                                                                   const char *, const td_page_req *, json_t **,
                                                                   td_status *)) {
        td_status st = { 0 };
        json_t *j = NULL;
        const char *user = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "user");
        td_page_req pg = page_of(rq->conn);
        if (list(rq->srv->t, &rq->caller, http_bearer_of(rq->conn), user, &pg, &j, &st) != TD_OK)
                return queue_status(rq, &st);
        return queue_json(rq->conn, 200, j, false);
}

static enum MHD_Result handle_devices_list(request *rq) {
        return handle_listing(rq, td_devices_list);
}

static enum MHD_Result handle_audit_list(request *rq) {
        return handle_listing(rq, td_audit_list);
}

static enum MHD_Result handle_device_delete(request *rq, const char *id) {
        td_status st = { 0 };
        if (td_device_revoke(rq->srv->t, &rq->caller, http_bearer_of(rq->conn), id, &st) != TD_OK)
                return queue_status(rq, &st);
        return queue_body(rq->conn, 204, NULL, NULL, false, NULL, NULL);
}

/* POST /api/unlock {"user": U} → {"user", "was_locked", "failures"}. */
static enum MHD_Result handle_unlock(request *rq) {
        enum MHD_Result res;
        td_unlock_result ur;
        td_status st = { 0 };
        const char *user = NULL;
        _cleanup_(json_decrefp) json_t *j = body_json(rq, &res);
        if (!j)
                return res;
        if (member_str(j, "user", &user) < 0)
                return queue_error(rq, 400, "invalid_request", "user must be a string", 0);
        if (td_unlock(rq->srv->t, &rq->caller, user, &ur, &st) != TD_OK)
                return queue_status(rq, &st);
        json_t *a = json_pack("{s:s,s:b,s:I}", "user", user, "was_locked", ur.was_locked, "failures",
                              (json_int_t) ur.failures);
        return a ? queue_json(rq->conn, 200, a, false) : MHD_NO;
}

static enum MHD_Result handle_jwks(request *rq) {
        td_status st = { 0 };
        json_t *j = NULL;
        if (td_jwks(rq->srv->t, &j, &st) != TD_OK)
                return queue_status(rq, &st);
        return queue_json(rq->conn, 200, j, false);
}

/* ---- endpoints of http_ext_routes[] ------------------------------------ */

static enum MHD_Result queue_reply(request *rq) {
        http_reply *p = &rq->reply;
        char who[TD_CALLER_NAME_MAX];
        if (p->status == 0 && p->st.code != TD_OK)
                return queue_status(rq, &p->st);
        if (p->status >= 400)
                log_info("HTTP %u %s for %s: %s", p->status, p->log_code ? p->log_code : "error",
                         td_caller_name(&rq->caller, who), p->log_message);
        char *body = TAKE_PTR(p->body);
        return queue_body_hdrs(rq->conn, p->status ? p->status : 500, p->content_type, body, p->secret, p->hdr_name,
                               p->hdr_value, HTTP_REPLY_HEADERS);
}

static td_code job_ext(request *rq, const json_t *j) {
        (void) j;
        rq->ext_rq.job(&rq->ext_rq, &rq->reply);
        rq->st.not_before_usec = rq->reply.not_before_usec;
        return TD_OK;
}

static enum MHD_Result handle_ext(request *rq, const http_ext_route *e, const char *url, const char *method) {
        rq->ext = e;
        rq->ext_rq = (http_ext_req) { .t = rq->srv->t, .caller = rq->caller, .conn = rq->conn, .method = method,
                                      .url = url, .body = rq->body ? rq->body : "", .len = rq->len,
                                      .enable_docs = rq->srv->lim.enable_docs };
        int r = e->fn(&rq->ext_rq, &rq->reply);
        if (r < 0)
                return MHD_NO;
        if (r == HTTP_EXT_DONE)
                return queue_reply(rq);
        return run_async(rq, rq->ext_rq.pool == HTTP_EXT_LOGIN ? rq->srv->workers : rq->srv->store_workers, job_ext,
                         NULL);
}

/* ---- the revocation feed: GET /api/revocations?after=SEQ&wait=SECONDS */

/* A query argument as a plain decimal in 0..max (absent: 0). -1: not one. */
static int64_t arg_decimal(struct MHD_Connection *conn, const char *name, int64_t max) {
        const char *v = NULL;
        size_t len = 0;
        if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, &len) != MHD_YES)
                return 0;
        size_t n = strspn(v, "0123456789");
        if (n == 0 || n > 18 || n != len || (v[0] == '0' && n > 1)) /* n != len: an encoded NUL */
                return -1;
        int64_t x = (int64_t) strtoll(v, NULL, 10);
        return x <= max ? x : -1;
}

static enum MHD_Result answer_feed(request *rq, char *jws) {
        return queue_body(rq->conn, 200, "application/jwt", jws, false, NULL, NULL);
}

/* From the long poll's thread (under its lock): answer now. */
static void feed_wake(void *data) {
        request *rq = data;
        atomic_thread_fence(memory_order_release);
        rq->state = REQ_FEED_READY;
        MHD_resume_connection(rq->conn);
}

static enum MHD_Result feed_now(request *rq) {
        td_status st = { 0 };
        char *jws = NULL;
        int64_t seq;
        if (td_revocations(rq->srv->t, &rq->caller, rq->feed_after, &jws, &seq, &st) != TD_OK)
                return queue_status(rq, &st);
        return answer_feed(rq, jws);
}

static enum MHD_Result handle_revocations(request *rq) {
        td_status st = { 0 };
        char *jws = NULL;
        int64_t seq, after = arg_decimal(rq->conn, "after", INT64_MAX - 1),
                     wait = arg_decimal(rq->conn, "wait", LONGPOLL_WAIT_MAX);
        longpoll *lp = rq->srv->t->longpoll;

        if (after < 0 || wait < 0)
                return queue_error(rq, 400, "invalid_request",
                                   "after must be a sequence number and wait 0..60 seconds (plain decimals)", 0);
        rq->feed_after = after;
        if (td_revocations(rq->srv->t, &rq->caller, after, &jws, &seq, &st) != TD_OK)
                return queue_status(rq, &st);
        if (wait == 0 || seq != after || !lp)
                return answer_feed(rq, jws);
        /* Nothing new: wait for a revocation or the deadline, then answer
         * with the feed as it is then. Not once the server stops: a
         * request of a kept-alive connection suspended after
         * http_server_stop released the waiters would stay so, and MHD
         * aborts when stopped with a suspended connection. */
        pthread_mutex_lock(&rq->srv->feed_lock);
        if (rq->srv->stopping) {
                pthread_mutex_unlock(&rq->srv->feed_lock);
                return answer_feed(rq, jws);
        }
        free(jws);
        rq->state = REQ_FEED_WAIT;
        MHD_suspend_connection(rq->conn);
        int r = longpoll_wait(lp, rq->srv, after, td_monotonic_usec() + wait * 1000000, feed_wake, rq);
        pthread_mutex_unlock(&rq->srv->feed_lock);
        if (r < 0) {
                rq->state = REQ_BODY;
                MHD_resume_connection(rq->conn);
                return queue_error(rq, 503, "unavailable", "too many feed requests are waiting, try again", 5);
        }
        log_debug("feed request of uid=%u waits after seq %lld", (unsigned) rq->caller.uid, (long long) after);
        return MHD_YES;
}

/* GET /metrics: root on the socket; over TCP a loopback client or one
 * with a verified client certificate (tokend-metrics.h). */
static enum MHD_Result handle_metrics(request *rq) {
        char *text = NULL;
        if (!metrics_caller_allowed(&rq->caller))
                return queue_error(rq, 403, "forbidden", "metrics are for root on the socket, and for loopback "
                                   "clients or clients with a certificate over the network", 0);
        verifier_status vs;
        tokend_rdlock(rq->srv->t);
        unsigned keys = (unsigned) jose_keyset_size(rq->srv->t->keys.keys);
        tokend_unlock(rq->srv->t);
        verifier *v = rq->srv->t->verifier;
        if (v)
                verifier_get_status(v, &vs);
        if (metrics_format(rq->srv->t->metrics, keys, v ? &vs : NULL, (int64_t) time(NULL), &text) < 0)
                return MHD_NO;
        return queue_body(rq->conn, 200, "text/plain; version=0.0.4; charset=utf-8", text, false, NULL, NULL);
}

static enum MHD_Result handle_docs(request *rq) {
        if (!rq->srv->lim.enable_docs)
                return queue_error(rq, 404, "not_found", "the API document is disabled ([API] EnableDocs=no)", 0);
        char *doc = strdup(tokend_openapi_json);
        if (!doc)
                return MHD_NO;
        return queue_body(rq->conn, 200, "application/json", doc, false, NULL, NULL);
}

/* ---- routing --------------------------------------------------------- */

typedef struct route {
        const char *path;
        const char *method;
        enum MHD_Result (*fn)(request *rq);
} route;

static const route routes[] = {
        { "/api/auth/login", "POST", handle_login },
        { "/api/auth/token", "POST", handle_issue },
        { "/api/auth/refresh", "POST", handle_refresh },
        { "/api/auth/logout", "POST", handle_logout },
        { "/api/auth/verify", "POST", handle_verify },
        { "/api/devices", "GET", handle_devices_list },
        { "/api/audit", "GET", handle_audit_list },
        { "/api/unlock", "POST", handle_unlock },
        { "/.well-known/jwks.json", "GET", handle_jwks },
        { "/api/revocations", "GET", handle_revocations },
        { "/api", "GET", handle_docs },
        { "/metrics", "GET", handle_metrics },
};

#define DEVICE_PREFIX "/api/devices/"

/* 0: route found (*ret set); -ENOENT: no such path; -EBADRQC: path known,
 * method not allowed (*ret_allow lists the allowed one). */
static int route_find(const char *url, const char *method, const route **ret, const char **ret_allow) {
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!streq(url, routes[i].path))
                        continue;
                known = true;
                *ret_allow = routes[i].method;
                if (streq(method, routes[i].method) || (streq(method, "HEAD") && streq(routes[i].method, "GET"))) {
                        *ret = &routes[i];
                        return 0;
                }
        }
        return known ? -EBADRQC : -ENOENT;
}

/* Like route_find, in http_ext_routes[]; allow lists every allowed method. */
static int ext_route_find(const char *url, const char *method, const http_ext_route **ret, char *allow,
                          size_t allow_size) {
        bool known = false;
        for (size_t i = 0; i < http_ext_n_routes; i++) {
                const http_ext_route *e = &http_ext_routes[i];
                if (!streq(url, e->path))
                        continue;
                size_t l = strlen(allow);
                snprintf(allow + l, allow_size - l, "%s%s", known ? ", " : "", e->method);
                known = true;
                if (streq(method, e->method) || (streq(method, "HEAD") && streq(e->method, "GET"))) {
                        *ret = e;
                        return 0;
                }
        }
        return known ? -EBADRQC : -ENOENT;
}

static enum MHD_Result dispatch(request *rq, const char *url, const char *method) {
        const route *rt = NULL;
        const http_ext_route *ert = NULL;
        const char *allow = NULL;
        char ext_allow[32] = "";

        if (strncmp(url, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0) {
                const char *id = url + strlen(DEVICE_PREFIX);
                if (!streq(method, "DELETE"))
                        return queue_error_hdr(rq, 405, "method_not_allowed", "use DELETE on a device", 0,
                                               MHD_HTTP_HEADER_ALLOW, "DELETE");
                rq->endpoint = DEVICE_PREFIX "{id}";
                return handle_device_delete(rq, id);
        }
        int r = route_find(url, method, &rt, &allow);
        if (r == -ENOENT) {
                r = ext_route_find(url, method, &ert, ext_allow, sizeof ext_allow);
                if (r == 0) {
                        rq->endpoint = ert->path;
                        return handle_ext(rq, ert, url, method);
                }
                allow = ext_allow;
        }
        if (r == -ENOENT)
                return queue_error(rq, 404, "not_found", "no such endpoint", 0);
        if (r == -EBADRQC) {
                /* The method is the caller's bytes: escaped so the answer is
                 * valid UTF-8 and the log line quotes no control character. */
                char msg[96], m[48];
                (void) str_escape_controls(method, strnlen(method, sizeof m), m, sizeof m);
                snprintf(msg, sizeof msg, "method %s is not allowed here; use %s", m, allow);
                return queue_error_hdr(rq, 405, "method_not_allowed", msg, 0, MHD_HTTP_HEADER_ALLOW, allow);
        }
        rq->endpoint = rt->path;
        return rt->fn(rq);
}

/* Who sent a request: its connection's peer, read once at accept
 * (conn_admit), else (cannot happen: a refused connection is shut down
 * before it sends) from the socket. */
static int peer_caller(struct MHD_Connection *conn, td_caller *ret) {
        if (conn_slot_peer(slot_of(conn), ret))
                return 0;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        return ci ? conn_peer(ci->connect_fd, ret) : -EIO;
}

/* A connection conn_admit() refused: tell the client why, in an answer
 * of its own (before it sent anything, or while it still sends), and
 * shut the socket down; libmicrohttpd then reads end-of-file and closes it. */
static void refuse_connection(int fd, const td_status *st) {
        unsigned status = http_status_of(st->code);
        json_t *j = json_pack("{s:s,s:s}", "error", td_code_to_string(st->code), "message", st->message);
        char *body = NULL, head[256];

        if (j && td_json_dump_compact(j, &body) == 0) {
                int n = snprintf(head, sizeof head,
                                 "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                                 "Retry-After: %lld\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                                 status, MHD_get_reason_phrase_for(status), (long long) st->retry_after,
                                 strlen(body));
                /* A fresh socket's buffer takes these few hundred bytes whole. */
                if (n > 0 && (size_t) n < sizeof head && send(fd, head, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
                        (void) send(fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        free(body);
        json_decref(j);
        (void) shutdown(fd, SHUT_RDWR);
}

/* Admission at accept ([Limits] MaxConnectionsPerUser,
 * ReservedRootConnections), and the slot's release at close. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        http_server *srv = cls;
        conn_slot *c = NULL;
        td_status st;

        metrics_connection(srv->t->metrics, srv->lim.name, code == MHD_CONNECTION_NOTIFY_CLOSED ? -1 : 1);
        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conn_release(*socket_context);
                *socket_context = NULL;
                return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
                return; /* cannot happen; on_request then fails to read the peer and refuses */
        bool ok = conn_admit(srv->conns, ci->connect_fd, &c, &st);
        *socket_context = c;
        if (!ok && srv->lim.tls_cert) /* no plain answer inside TLS: just close */
                (void) shutdown(ci->connect_fd, SHUT_RDWR);
        else if (!ok)
                refuse_connection(ci->connect_fd, &st);
}

/* Bytes in MHD's own buffers (request body, header values) that held a
 * secret and that MHD no longer needs: zeroed so they do not linger in its
 * connection memory after the request. */
static void wipe_mhd_bytes(const char *p, size_t n) {
        explicit_bzero((char *) (uintptr_t) p, n);
}

/* Append n bytes of body to rq (or note that it is too big, dropping
 * them). false: out of memory. */
static bool take_upload(request *rq, const char *data, size_t n, size_t max) {
        if (rq->too_big || n > max - rq->len) {
                rq->too_big = true;
                return true;
        }
        return erase_buf_append(&rq->body, &rq->len, &rq->cap, 1024, data, n) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        http_server *srv = cls;
        request *rq = *req_cls;
        (void) version;

        if (!rq) {
                rq = calloc(1, sizeof *rq);
                if (!rq)
                        return MHD_NO;
                rq->srv = srv;
                rq->conn = conn;
                rq->state = REQ_BODY;
                rq->started_usec = td_monotonic_usec();
                *req_cls = rq;
                if (peer_caller(conn, &rq->caller) < 0) {
                        log_error("cannot read the peer credentials of a connection, refusing it");
                        return MHD_NO; /* fail closed: every request is attributed */
                }
                if (srv->lim.peer_subject && srv->lim.peer_subject(conn, rq->subject, sizeof rq->subject) == 1)
                        rq->caller.subject = rq->subject;
                const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
                if (declared > srv->lim.max_request_bytes) {
                        rq->too_big = true;
                        /* A client that waits for "100 Continue" sends nothing more, and
                         * a huge body is not worth reading: answer now and close. Else
                         * read and drop the body first, so the client (still writing)
                         * gets the 413 instead of a reset connection. */
                        const char *ex = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
                        if ((ex && strcasecmp(ex, "100-continue") == 0) || declared > TOO_BIG_DRAIN_BYTES)
                                return queue_error(rq, 413, "payload_too_large",
                                                   "request body exceeds MaxRequestBytes", 0);
                }
                return MHD_YES;
        }

        if (rq->state == REQ_ASYNC_DONE) {
                atomic_thread_fence(memory_order_acquire);
                rq->state = REQ_BODY;
                if (rq->ext) /* no reply: its job never ran (no worker free) */
                        return rq->reply.status || rq->reply.st.code ? queue_reply(rq)
                                                                     : queue_status(rq, &rq->st);
                return answer_tokens(rq, rq->code, &rq->st, &rq->tokens);
        }
        if (rq->state == REQ_FEED_READY) {
                atomic_thread_fence(memory_order_acquire);
                rq->state = REQ_BODY;
                return feed_now(rq);
        }
        if (rq->state == REQ_ASYNC_PENDING || rq->state == REQ_FEED_WAIT)
                return MHD_YES;

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0; /* consumed (or discarded) */
                bool ok = take_upload(rq, upload_data, n, srv->lim.max_request_bytes);
                /* It may hold a password or a refresh token: zero MHD's copy
                 * too, which it is done with (all of it was consumed). */
                wipe_mhd_bytes(upload_data, n);
                return ok ? MHD_YES : MHD_NO;
        }
        /* The request is all here: tokend's own work on it has no deadline
         * (queueing its answer starts one). */
        conn_deadline_disarm(slot_of(conn));
        if (rq->too_big)
                return queue_error(rq, 413, "payload_too_large", "request body exceeds MaxRequestBytes", 0);
        return dispatch(rq, url, method);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
        request *rq = *req_cls;
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        (void) cls, (void) toe;
        if (auth) /* a bearer access token */
                wipe_mhd_bytes(auth, strlen(auth));
        conn_deadline_arm(slot_of(conn)); /* a kept-alive connection's next request */
        if (!rq)
                return;
        const union MHD_ConnectionInfo *si = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (si && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                metrics_request(((http_server *) cls)->t->metrics, rq->endpoint, si->http_status,
                                td_monotonic_usec() - rq->started_usec);
        if (rq->state == REQ_ASYNC_PENDING || rq->state == REQ_FEED_WAIT) {
                /* Cannot happen: a suspended connection is not completed.
                 * Leak rather than free memory a worker still uses. */
                log_error("request completed while its login job runs; leaking it");
                return;
        }
        erase_and_free_buf(rq->body, rq->cap);
        json_decref(rq->job_json);
        td_tokens_done(&rq->tokens);
        http_ext_done(&rq->ext_rq, &rq->reply);
        free(rq);
        *req_cls = NULL;
}

static _printf_(2, 0) void mhd_logger(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        (void) cls;
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        size_t l = strlen(buf);
        while (l > 0 && buf[l - 1] == '\n')
                buf[--l] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

/* Stop the delay thread, answering everything it holds now. */
static void http_server_free(http_server *s) {
        if (s->delay_running) {
                pthread_mutex_lock(&s->delay_lock);
                s->delay_stop = true;
                pthread_cond_signal(&s->delay_cond);
                pthread_mutex_unlock(&s->delay_lock);
                pthread_join(s->delay_thread, NULL);
        }
        workers_free(s->store_workers); /* runs what is queued: their connections still exist */
        if (s->mhd)
                MHD_stop_daemon(s->mhd); /* releases every connection slot */
        conn_table_free(s->conns);
        pthread_cond_destroy(&s->delay_cond);
        pthread_mutex_destroy(&s->delay_lock);
        pthread_mutex_destroy(&s->feed_lock);
        free(s);
}

int http_server_start(tokend *t, workers *login_workers, int fd, const http_limits *lim, http_server **ret) {
        http_server *s = calloc(1, sizeof *s);
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned threads = lim->threads ? lim->threads : (unsigned) (cores > 0 ? cores : 1);

        if (!s)
                return -ENOMEM;
        s->t = t;
        s->workers = login_workers;
        s->lim = *lim;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->delay_cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&s->delay_lock, NULL);
        pthread_mutex_init(&s->feed_lock, NULL);
        if (pthread_create(&s->delay_thread, NULL, delay_thread, s) != 0) {
                http_server_free(s);
                return -EAGAIN;
        }
        s->delay_running = true;
        if (workers_new(STORE_THREADS, lim->max_connections, &s->store_workers) < 0) {
                http_server_free(s);
                return -ENOMEM;
        }
        conn_limits cl = { .max_connections = lim->max_connections, .per_user = lim->max_connections_per_user,
                           .reserved_root = lim->reserved_root_connections, .timeout = lim->timeout };
        int r = conn_table_new(&cl, &s->conns);
        if (r < 0) {
                http_server_free(s);
                return r;
        }
        /* TLS 1.2 and 1.3 only (GnuTLS priority string). */
        struct MHD_OptionItem tls[] = {
                { MHD_OPTION_HTTPS_MEM_CERT, 0, (void *) (uintptr_t) lim->tls_cert },
                { MHD_OPTION_HTTPS_MEM_KEY, 0, (void *) (uintptr_t) lim->tls_key },
                { MHD_OPTION_HTTPS_PRIORITIES, 0,
                  (void *) (uintptr_t) "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE" },
                { lim->tls_trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0,
                  (void *) (uintptr_t) lim->tls_trust },
                { MHD_OPTION_END, 0, NULL },
        };
        if (!lim->tls_cert)
                tls[0].option = MHD_OPTION_END;
        s->mhd = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                        MHD_USE_ERROR_LOG | (lim->tls_cert ? MHD_USE_TLS : 0), 0,
                NULL, NULL, on_request, s,
                MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                MHD_OPTION_ARRAY, tls,
                MHD_OPTION_LISTEN_SOCKET, fd,
                MHD_OPTION_THREAD_POOL_SIZE, threads,
                MHD_OPTION_CONNECTION_LIMIT, lim->max_connections,
                MHD_OPTION_CONNECTION_TIMEOUT, lim->timeout,
                /* 32 KiB: above that MHD mmaps (and munmaps) each connection's pool,
                 * which made a new connection cost ~1 ms of TLB shootdowns. */
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 32 * 1024,
                MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                MHD_OPTION_END);
        if (!s->mhd) {
                http_server_free(s);
                return -EIO;
        }
        *ret = s;
        return 0;
}

void http_server_stop(http_server *s, unsigned grace) {
        if (!s)
                return;
        /* No new connection from now on (they wait in the listen socket's
         * backlog for a successor). First, before the releases below wake
         * the pool threads: libmicrohttpd 0.9.75 aborts the process when a
         * pool thread busy at this moment removes the listen socket from its
         * epoll set as well ("Failed to remove listen FD from epoll set",
         * an open defect), which the resumed feed requests made likely. */
        (void) MHD_quiesce_daemon(s->mhd);
        /* Under feed_lock: from now on no feed request waits, so the
         * release below leaves none suspended. */
        pthread_mutex_lock(&s->feed_lock);
        s->stopping = true;
        pthread_mutex_unlock(&s->feed_lock);
        longpoll_release(s->t->longpoll, s); /* waiting feed requests are answered now */
        /* Held-back answers go out first: MHD must not stop with suspended connections. */
        pthread_mutex_lock(&s->delay_lock);
        s->delay_stop = true;
        pthread_cond_signal(&s->delay_cond);
        pthread_mutex_unlock(&s->delay_lock);
        /* Let requests in flight finish and their answers go out. */
        for (unsigned i = 0; i < grace * 20; i++) {
                const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
                if (!di || di->num_connections == 0)
                        break;
                usleep(50 * 1000);
        }
        http_server_free(s);
}

http_limits tokend_http_limits(const tokend_config *c) {
        return (http_limits) {
                .max_request_bytes = c->max_request_bytes,
                .timeout = (unsigned) c->request_timeout,
                .max_connections = c->max_connections,
                .max_connections_per_user = c->max_connections_per_user,
                .reserved_root_connections = c->reserved_root_connections,
                .enable_docs = c->enable_docs,
        };
}
