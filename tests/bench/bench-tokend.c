/* SPDX-License-Identifier: MIT */
/* tokend benchmark (not a test, not run by `make check`): throughput and
 * p50/p99 latency through a running tokend's Unix socket, next to the raw
 * Ed25519 verify rate of this machine measured in the same run.
 *
 * Build: make -C BUILDDIR tests/bench/bench-tokend (also built by `make`).
 * Run:   BUILDDIR/tests/bench/run-bench-tokend.sh [--profile] [OPTIONS]
 *        (starts a throwaway tokend on a temporary state dir under /var/tmp,
 *        runs this program, optionally profiles the daemon with perf, stops it)
 *    or  bench-tokend --socket PATH [--pid PID] [OPTIONS] against a running one.
 *        --socket (and --pid) may be given up to MAX_DAEMONS times, one per
 *        tokend, e.g. two issuers sharing one PostgreSQL database
 *        (tests/bench/run-bench-store.sh): client i talks to socket
 *        i mod n; tokens and refresh chains are set up through the first
 *        socket (or --issuer-socket) and used through every one; the tokend
 *        CPU columns are the sum over the daemons. --store-pid PID (the
 *        postmaster): after each measurement a line splits the window's CPU
 *        per operation into tokend, that process and its children, this
 *        client, every other process, and idle.
 * Options: --seconds S per measurement (3), --rounds N repeats of every
 *        figure (3; rounds are interleaved so a burst of load from other
 *        processes hits one round, not one figure), --clients 1,2,8,64,
 *        --ops null,verify,vrepeat,vconnect,issue,refresh, --pool N devices
 *        (2000), --key-dir DIR (the daemon's key directory, readable: unique
 *        tokens are then minted here, see verify), --issuer-socket PATH (the
 *        pool's tokens come from that tokend, an issuer; --socket is then
 *        its verifier, [Verifier] Issuer=: run-bench-tokend.sh --verifier).
 *
 * Operations (each client is one thread with one blocking keep-alive
 * connection; requests are pre-built, answers are read by Content-Length and
 * only the status line is looked at, except refresh which copies the new
 * refresh token out of the answer without a JSON parser):
 *   null      GET /.well-known/oauth-authorization-server (RFC 8414
 *             metadata, built from the configuration: no store read, no
 *             key export): the HTTP floor of the daemon.
 *   verify    POST /api/auth/verify of unique tokens: no token is sent
 *             twice in the daemon's life, so no cache of the daemon can
 *             answer it. With --key-dir, before each measurement (untimed)
 *             this program mints as many fresh tokens as raw × cores could
 *             verify in the window, with the daemon's active key and the
 *             claims of the pooled tokens (fresh jti, spread over the pool's
 *             devices: the daemon checks them exactly as its own). Without
 *             it, the pool's tokens are used once each and a measurement
 *             ends early when they run out.
 *   vrepeat   the same token again and again (each client its own pooled
 *             token), as pam_jwt's account phase repeats the auth phase's.
 *   vconnect  unique tokens over a new connection per request, as pam_jwt.
 *   issue     peer POST /api/auth/token (a new device: one durable commit).
 *   refresh   POST /api/auth/refresh: every client rotates its own chain
 *             (synchronous=FULL commit per rotation, group-committed).
 *
 * Columns: ops/s best and median of the rounds; p50/p99 of the median round;
 * CPU seconds per second of tokend (/proc/PID/stat), of this client
 * (getrusage) and of every other process (/proc/stat busy minus both), and
 * CPU µs per operation. For the verify ops, ratio = ops/s ÷ (raw × cores),
 * and the same with the cores the client left free, raw × (cores − client
 * CPUs), where raw is the best single-thread crypto_sign_verify_detached
 * rate (per CPU-second) on a message of the token's signing-input size.
 * The end of the output compares every target of issue 20 ("verify near
 * the physical floor") side by side with what this run measured. The
 * machine is shared: the load average is printed at start and end. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "jose-claims.h"
#include "jose-jws.h"
#include "jose-key.h"
#include "json-util.h"
#include "macro.h"

#define RESP_MAX (64U * 1024U)   /* largest answer we read */
#define VALUE_MAX 4096U          /* largest string we copy out of an answer */
#define DEFAULT_SECONDS 3.0
#define DEFAULT_ROUNDS 3U
#define MAX_ROUNDS 50U
#define DEFAULT_POOL 2000U
#define POOL_MAX 1000000U
#define POOL_ISSUERS 8U          /* threads filling the token pool */
#define MAX_CLIENT_COUNTS 16U
#define MAX_CLIENTS 1000U
#define MAX_DAEMONS 8U           /* --socket given this many times at most */
#define RAW_SECONDS 1.0          /* per raw verify measurement */
/* Targets of issue 20 (verify near the physical floor), printed side by side: */
#define UNIQUE_TARGET 0.65       /* unique-token verify ≥ this × raw × cores */
#define CPU_TARGET 1.3           /* tokend CPU per unique verify ≤ this × the raw signature check */
#define REPEAT_TARGET 2.0        /* repeated-token verify ≥ this × raw × cores */
#define MINT_SLACK 1.05          /* unique tokens minted: raw × cores × seconds × this */
#define MINT_MAX 2000000U        /* at most this many per measurement */
#define REFRESH_TARGET 3000.0    /* refreshes per second */
#define BENCH_AUDIENCE "sshd"
#define ISSUE_BODY "{\"audience\":[\"" BENCH_AUDIENCE "\"]}"

/* ---- a minimal HTTP/1.1 keep-alive client ------------------------------ */

typedef struct hconn {
        const char *path;
        int fd;
        bool used;              /* a request already went over fd */
        size_t len;             /* bytes in buf */
        char buf[RESP_MAX + 1];
} hconn;

typedef struct hresp {
        int status;
        const char *body;       /* inside the hconn's buffer, NUL-terminated */
        size_t body_len;
} hresp;

static void hconn_close(hconn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->used = false;
}

static int hconn_connect(hconn *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(c->path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, c->path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        c->fd = fd;
        c->used = false;
        return 0;
}

static hconn *hconn_new(const char *path) {
        hconn *c = malloc(sizeof *c);
        if (!c)
                return NULL;
        c->path = path;
        c->fd = -1;
        c->used = false;
        c->len = 0;
        if (hconn_connect(c) < 0) {
                free(c);
                return NULL;
        }
        return c;
}

static void hconn_free(hconn *c) {
        if (!c)
                return;
        hconn_close(c);
        free(c);
}

static int send_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Status, Content-Length and Connection: close from the header block
 * buf[0 .. hdr_len). */
static int parse_head(const char *buf, size_t hdr_len, int *ret_status, size_t *ret_clen, bool *ret_close) {
        static const char cl[] = "content-length:", conn_close[] = "connection: close";
        size_t clen = 0;
        bool close_it = false;

        if (hdr_len < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
                return -EBADMSG;
        long st = strtol(buf + 9, NULL, 10);
        if (st < 100 || st > 599)
                return -EBADMSG;
        for (const char *l = strstr(buf, "\r\n"); l && (size_t) (l - buf) < hdr_len; l = strstr(l, "\r\n")) {
                l += 2;
                if (strncasecmp(l, cl, sizeof cl - 1) == 0) {
                        unsigned long long v = strtoull(l + sizeof cl - 1, NULL, 10);
                        if (v > RESP_MAX)
                                return -E2BIG;
                        clen = (size_t) v;
                } else if (strncasecmp(l, conn_close, sizeof conn_close - 1) == 0)
                        close_it = true;
        }
        *ret_status = (int) st;
        *ret_clen = clen;
        *ret_close = close_it;
        return 0;
}

/* One request, one answer (no pipelining). *ret points into c's buffer. */
static int hconn_exchange_once(hconn *c, const char *req, size_t req_len, hresp *ret) {
        size_t hdr_len = 0, clen = 0;
        bool have_head = false, close_it = false;
        int status = 0, r;

        if (c->fd < 0 && (r = hconn_connect(c)) < 0)
                return r;
        c->used = true;
        if ((r = send_all(c->fd, req, req_len)) < 0)
                return r;
        c->len = 0;
        while (!have_head || c->len < hdr_len + clen) {
                if (c->len >= RESP_MAX)
                        return -E2BIG;
                ssize_t k = recv(c->fd, c->buf + c->len, RESP_MAX - c->len, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return c->len == 0 ? -ECONNRESET : -EBADMSG;
                c->len += (size_t) k;
                c->buf[c->len] = 0;
                if (have_head)
                        continue;
                const char *e = strstr(c->buf, "\r\n\r\n");
                if (!e)
                        continue;
                hdr_len = (size_t) (e - c->buf) + 4;
                if ((r = parse_head(c->buf, hdr_len, &status, &clen, &close_it)) < 0)
                        return r;
                have_head = true;
        }
        if (c->len != hdr_len + clen)
                return -EBADMSG;
        if (close_it)
                hconn_close(c);
        *ret = (hresp){ .status = status, .body = c->buf + hdr_len, .body_len = clen };
        return 0;
}

/* As above; a kept-alive connection the daemon closed while idle is
 * reopened once. */
static int hconn_exchange(hconn *c, const char *req, size_t req_len, hresp *ret) {
        bool reused = c->used;
        int r = hconn_exchange_once(c, req, req_len, ret);
        if (r < 0 && reused && (r == -ECONNRESET || r == -EPIPE)) {
                hconn_close(c);
                r = hconn_exchange_once(c, req, req_len, ret);
        }
        if (r < 0)
                hconn_close(c);
        return r;
}

/* *ret: a complete request; body (JSON) may be NULL. */
static int http_build(const char *method, const char *path, const char *body, char **ret, size_t *ret_len) {
        char *s = NULL;
        int n = body ? asprintf(&s,
                                "%s %s HTTP/1.1\r\nHost: tokend\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\n\r\n%s",
                                method, path, strlen(body), body)
                     : asprintf(&s, "%s %s HTTP/1.1\r\nHost: tokend\r\n\r\n", method, path);
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        *ret_len = (size_t) n;
        return 0;
}

/* As http_build() for a POST whose JSON body comes from fmt. */
_printf_(4, 5) static int http_post(const char *path, char **ret, size_t *ret_len, const char *fmt, ...) {
        char *body = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&body, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        int r = http_build("POST", path, body, ret, ret_len);
        erase_and_free(body); /* may hold a refresh token */
        return r;
}

/* The string member key of a token answer, found without a JSON parser
 * (the answer is compact JSON from tokend, and every value we take — tokens,
 * device ids, user names — is base64url or a user name, never escaped: a
 * value holding a quote or a backslash is refused). */
static int answer_str(const hresp *h, const char *key, char *buf, size_t size) {
        char pat[64];
        if (h->status != 200 || (size_t) snprintf(pat, sizeof pat, "\"%s\":\"", key) >= sizeof pat)
                return -EBADMSG;
        const char *p = strstr(h->body, pat);
        if (!p)
                return -EBADMSG;
        p += strlen(pat);
        size_t n = strcspn(p, "\"\\");
        if (p[n] != '"' || n == 0 || n >= size)
                return -EBADMSG;
        memcpy(buf, p, n);
        buf[n] = 0;
        return 0;
}

/* ---- benchmark state ---------------------------------------------------- */

typedef struct pooled {
        char *req;              /* a complete verify request */
        size_t len;
} pooled;

typedef struct bench {
        const char *socket[MAX_DAEMONS]; /* client i talks to socket[i % n_daemons] */
        const char *issuer_socket; /* where tokens are issued (--issuer-socket; default socket[0]) */
        double seconds;
        pid_t daemon_pid[MAX_DAEMONS]; /* their CPU is summed */
        pid_t store_pid;        /* --store-pid: measured with its children */
        size_t n_daemons, n_pids;
        unsigned cores;         /* CPUs the daemon may run on */
        char user[256];         /* the user our peer tokens are for */
        char *probe_token;      /* the first token: its claims and kid are the minting template */
        size_t token_len, signing_input_len;
        pooled *pool;           /* one token of each pooled device */
        size_t pool_n;
        unsigned long long extra_devices; /* --extra-devices: written into the store by the caller */
        atomic_size_t pool_next; /* next never-sent pool token (no --key-dir) */
        jose_key *mint_key;     /* --key-dir: the daemon's active key */
        at_claims mint_claims;  /* the claims of a pooled token, copied into minted ones */
        char **pool_device;     /* the pool's device ids (for minting) */
        pooled *uniq;           /* this measurement's unique tokens */
        size_t uniq_n, uniq_cap;
        atomic_size_t uniq_next;
        atomic_bool exhausted;  /* a client ran out of unique tokens */
        double raw_all;         /* raw verify/s × cores, for the mint count */
        char *issue_req, *null_req;
        size_t issue_req_len, null_req_len;
        pthread_barrier_t start;
        atomic_bool stop;
} bench;

typedef struct worker {
        bench *b;
        unsigned idx;           /* client number in its measurement */
        hconn *conn;
        const struct op *op;
        char *refresh_req;      /* refresh: the next request of this chain */
        size_t refresh_req_len;
        uint64_t *lat;          /* ns per counted op */
        size_t n_lat, cap_lat;
        uint64_t errors;
        int setup_r;
} worker;

typedef struct op {
        const char *name;
        int (*setup)(worker *w); /* untimed, may be NULL */
        int (*run)(worker *w);   /* one request: 0 on the expected answer */
} op;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static double thread_cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The refresh request that continues the chain of a token answer. */
static int next_refresh(const hresp *h, char **ret, size_t *ret_len) {
        char rt[VALUE_MAX], dev[VALUE_MAX];
        char *req = NULL;
        size_t len = 0;
        int r = answer_str(h, "refresh_token", rt, sizeof rt);
        if (r >= 0)
                r = answer_str(h, "device_id", dev, sizeof dev);
        if (r >= 0)
                r = http_post("/api/auth/refresh", &req, &len, "{\"refresh_token\":\"%s\",\"device_id\":\"%s\"}",
                              rt, dev);
        sodium_memzero(rt, sizeof rt);
        if (r < 0)
                return r;
        erase_and_free(*ret);
        *ret = req;
        *ret_len = len;
        return 0;
}

/* ---- operations --------------------------------------------------------- */

/* Send a pre-built request; 0 if the answer has status 200. */
static int exchange_ok(worker *w, const char *req, size_t len, hresp *ret) {
        int r = hconn_exchange(w->conn, req, len, ret);
        return r < 0 ? r : ret->status == 200 ? 0 : -EPROTO;
}

static int op_null_run(worker *w) {
        hresp h;
        return exchange_ok(w, w->b->null_req, w->b->null_req_len, &h);
}

/* A token never sent before; -ENODATA when there is none left (the
 * measurement ends there). */
static int op_verify_run(worker *w) {
        bench *b = w->b;
        const pooled *p;
        hresp h;
        if (b->mint_key) {
                size_t i = atomic_fetch_add(&b->uniq_next, 1);
                p = i < b->uniq_n ? &b->uniq[i] : NULL;
        } else {
                size_t i = atomic_fetch_add(&b->pool_next, 1);
                p = i < b->pool_n ? &b->pool[i] : NULL;
        }
        if (!p) {
                atomic_store(&b->exhausted, true);
                return -ENODATA;
        }
        return exchange_ok(w, p->req, p->len, &h);
}

/* The same token again: client i sends pooled token i, over and over. */
static int op_verify_repeat_run(worker *w) {
        const pooled *p = &w->b->pool[w->idx % w->b->pool_n];
        hresp h;
        return exchange_ok(w, p->req, p->len, &h);
}

/* As pam_jwt does it: a new connection for every verify. */
static int op_verify_newconn_run(worker *w) {
        hconn_close(w->conn);
        return op_verify_run(w);
}

static int op_issue_run(worker *w) {
        hresp h;
        return exchange_ok(w, w->b->issue_req, w->b->issue_req_len, &h);
}

/* Refresh: every client enrols its own device through the issuer socket
 * (with several sockets, a chain begun on one is rotated on another), then
 * rotates its chain through its own. */
static int op_refresh_setup(worker *w) {
        const bench *b = w->b;
        hconn *own = NULL, *c = w->conn;
        hresp h;
        if (!streq(c->path, b->issuer_socket) && !(c = own = hconn_new(b->issuer_socket)))
                return -ECONNREFUSED;
        int r = hconn_exchange(c, b->issue_req, b->issue_req_len, &h);
        if (r >= 0)
                r = h.status == 200 ? next_refresh(&h, &w->refresh_req, &w->refresh_req_len) : -EPROTO;
        hconn_free(own);
        return r;
}

static int op_refresh_run(worker *w) {
        hresp h;
        int r = exchange_ok(w, w->refresh_req, w->refresh_req_len, &h);
        if (r >= 0)
                r = next_refresh(&h, &w->refresh_req, &w->refresh_req_len);
        if (r < 0)
                (void) op_refresh_setup(w); /* the chain is broken: start a new one */
        return r;
}

enum { OP_NULL, OP_VERIFY, OP_VREPEAT, OP_VCONNECT, OP_ISSUE, OP_REFRESH, _OP_MAX };

static const op ops[_OP_MAX] = {
        [OP_NULL] = { "null", NULL, op_null_run },
        [OP_VERIFY] = { "verify", NULL, op_verify_run },
        [OP_VREPEAT] = { "vrepeat", NULL, op_verify_repeat_run },
        [OP_VCONNECT] = { "vconnect", NULL, op_verify_newconn_run },
        [OP_ISSUE] = { "issue", NULL, op_issue_run },
        [OP_REFRESH] = { "refresh", op_refresh_setup, op_refresh_run },
};

/* ---- the token pool ----------------------------------------------------- */

typedef struct pool_filler {
        bench *b;
        atomic_size_t *next;
        int r;
} pool_filler;

static void *pool_fill_thread(void *p) {
        pool_filler *f = p;
        bench *b = f->b;
        hconn *c = hconn_new(b->issuer_socket);
        char at[VALUE_MAX], dev[VALUE_MAX];
        f->r = c ? 0 : -ECONNREFUSED;
        for (size_t i; f->r >= 0 && (i = atomic_fetch_add(f->next, 1)) < b->pool_n;) {
                hresp h;
                f->r = hconn_exchange(c, b->issue_req, b->issue_req_len, &h);
                if (f->r >= 0)
                        f->r = answer_str(&h, "access_token", at, sizeof at);
                if (f->r >= 0)
                        f->r = answer_str(&h, "device_id", dev, sizeof dev);
                if (f->r >= 0 && !(b->pool_device[i] = strdup(dev)))
                        f->r = -ENOMEM;
                if (f->r >= 0)
                        f->r = http_post("/api/auth/verify", &b->pool[i].req, &b->pool[i].len,
                                         "{\"token\":\"%s\",\"user\":\"%s\",\"service\":\"" BENCH_AUDIENCE "\"}",
                                         at, b->user);
        }
        hconn_free(c);
        return NULL;
}

/* One token first: who we are, and the size of a default token. */
static int probe(bench *b) {
        char at[VALUE_MAX];
        hconn *c = hconn_new(b->issuer_socket);
        hresp h;
        int r = c ? hconn_exchange(c, b->issue_req, b->issue_req_len, &h) : -ECONNREFUSED;
        if (r >= 0)
                r = answer_str(&h, "access_token", at, sizeof at);
        if (r >= 0)
                r = answer_str(&h, "name", b->user, sizeof b->user); /* user.name */
        hconn_free(c);
        if (r < 0)
                return r;
        const char *dot = strrchr(at, '.');
        b->token_len = strlen(at);
        b->signing_input_len = dot ? (size_t) (dot - at) : 0;
        return (b->probe_token = strdup(at)) ? 0 : -ENOMEM;
}

/* ---- unique tokens, minted with the daemon's key (--key-dir) ------------ */

/* Find the key of the probe token's kid among dir's *.pem files and keep
 * the probe token's claims as the template of minted tokens. */
static int mint_setup(bench *b, const char *dir) {
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        int r = jws_decode_unverified(b->probe_token, strlen(b->probe_token), &header, &payload);
        if (r < 0)
                return r;
        const char *kid = td_json_object_get_str(header, "kid"), *iss = td_json_object_get_str(payload, "iss");
        json_int_t iat = json_integer_value(json_object_get(payload, "iat"));
        if (!kid || !iss)
                return -EBADMSG;
        at_check chk = { .issuer = iss, .now = (int64_t) iat };
        if ((r = at_claims_check(header, payload, &chk, &b->mint_claims)) < 0)
                return r;
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        for (struct dirent *de; !b->mint_key && (de = readdir(d));) {
                char path[4096];
                jose_key *k = NULL;
                size_t l = strlen(de->d_name);
                if (l < 5 || !streq(de->d_name + l - 4, ".pem") ||
                    (size_t) snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
                        continue;
                if (jose_key_load_pem_file(path, NULL, &k) < 0)
                        continue;
                if (streq(jose_key_kid(k), kid))
                        b->mint_key = k;
                else
                        jose_key_free(k);
        }
        closedir(d);
        return b->mint_key ? 0 : -ENOKEY;
}

typedef struct minter {
        bench *b;
        size_t from, to;
        int r;
} minter;

static void *mint_thread(void *p) {
        minter *m = p;
        bench *b = m->b;
        const at_claims *cl = &b->mint_claims;
        for (size_t i = m->from; m->r >= 0 && i < m->to; i++) {
                char *tok = NULL;
                int64_t now = (int64_t) time(NULL);
                at_params ap = { .issuer = cl->iss, .subject = cl->sub, .uid = (uint32_t) cl->uid,
                                 .aud = (const char *const *) cl->aud, .n_aud = cl->n_aud, .iat = now,
                                 .lifetime = cl->exp - cl->iat, .client_id = b->pool_device[i % b->pool_n] };
                m->r = at_build(b->mint_key, &ap, &tok, NULL, NULL, 0);
                if (m->r < 0)
                        break;
                free(b->uniq[i].req);
                b->uniq[i].req = NULL;
                m->r = http_post("/api/auth/verify", &b->uniq[i].req, &b->uniq[i].len,
                                 "{\"token\":\"%s\",\"user\":\"%s\",\"service\":\"" BENCH_AUDIENCE "\"}", tok,
                                 b->user);
                free(tok);
        }
        return NULL;
}

/* n fresh unique tokens in b->uniq (untimed, on every core). */
static int mint(bench *b, size_t n) {
        pthread_t th[MAX_CLIENTS];
        minter m[MAX_CLIENTS];
        unsigned k = b->cores;
        int r = 0;

        if (n > b->uniq_cap) {
                pooled *v = realloc(b->uniq, n * sizeof *v);
                if (!v)
                        return -ENOMEM;
                memset(v + b->uniq_cap, 0, (n - b->uniq_cap) * sizeof *v);
                b->uniq = v;
                b->uniq_cap = n;
        }
        for (unsigned i = 0; i < k; i++) {
                m[i] = (minter){ .b = b, .from = n * i / k, .to = n * (i + 1) / k };
                if (pthread_create(&th[i], NULL, mint_thread, &m[i]) != 0) {
                        mint_thread(&m[i]);
                        th[i] = 0;
                }
        }
        for (unsigned i = 0; i < k; i++) {
                if (th[i])
                        pthread_join(th[i], NULL);
                if (m[i].r < 0)
                        r = m[i].r;
        }
        b->uniq_n = r < 0 ? 0 : n;
        atomic_store(&b->uniq_next, 0);
        return r;
}
static int pool_fill(bench *b) {
        pthread_t th[POOL_ISSUERS];
        pool_filler f[POOL_ISSUERS];
        atomic_size_t next = 0;
        unsigned n = 0;
        int r = 0;

        b->pool = calloc(b->pool_n, sizeof *b->pool);
        b->pool_device = calloc(b->pool_n, sizeof *b->pool_device);
        if (!b->pool || !b->pool_device)
                return -ENOMEM;
        for (; n < POOL_ISSUERS; n++) {
                f[n] = (pool_filler){ .b = b, .next = &next };
                if (pthread_create(&th[n], NULL, pool_fill_thread, &f[n]) != 0)
                        break;
        }
        for (unsigned i = 0; i < n; i++) {
                pthread_join(th[i], NULL);
                if (f[i].r < 0)
                        r = f[i].r;
        }
        return n == 0 ? -EAGAIN : r;
}

/* ---- one measurement ---------------------------------------------------- */

typedef struct result {
        double ops_per_s, p50_ms, p99_ms;
        uint64_t ops, errors;
        double daemon_cores, client_cores; /* CPU-seconds per second */
        double others_cores;               /* every other process, from /proc/stat */
        double daemon_us_op, client_us_op; /* CPU µs per operation */
        double daemon_sys_us_op, client_sys_us_op; /* of which in the kernel (stime) */
        double store_cores, idle_cores;    /* --store-pid and its children (< 0: not asked); idle CPUs */
        bool exhausted;                    /* the unique tokens ran out before the window's end */
} result;

/* utime + stime of pid in seconds (and its parent, its stime), < 0 if
 * unreadable. */
static double proc_cpu_s(pid_t pid, pid_t *ret_ppid, double *ret_sys) {
        char path[64], buf[1024];
        unsigned long long ut, st;
        int ppid;
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* comm may hold spaces */
        if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid, &ut, &st) != 3)
                return -1;
        if (ret_ppid)
                *ret_ppid = (pid_t) ppid;
        if (ret_sys)
                *ret_sys = (double) st / (double) sysconf(_SC_CLK_TCK);
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* --store-pid: that process and its children (PostgreSQL's postmaster:
 * the backends of the daemons' connections, the WAL writer, the
 * checkpointer...), < 0 if not asked or unreadable. A child that exits
 * during the window takes its CPU with it: the daemons keep their
 * connections open. */
static double store_cpu_s(const bench *b) {
        if (b->store_pid <= 0)
                return -1;
        double sum = proc_cpu_s(b->store_pid, NULL, NULL);
        DIR *d = opendir("/proc");
        if (sum < 0 || !d) {
                if (d)
                        closedir(d);
                return -1;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                pid_t ppid = 0;
                if (*end || pid <= 0)
                        continue;
                double s = proc_cpu_s((pid_t) pid, &ppid, NULL);
                if (s >= 0 && ppid == b->store_pid)
                        sum += s;
        }
        closedir(d);
        return sum;
}

/* The sum of proc_cpu_s() over the daemons (and of their stime), < 0 if
 * one is unreadable. */
static double daemons_cpu_s(const bench *b, double *ret_sys) {
        double sum = 0, sys_sum = 0;
        for (size_t i = 0; i < b->n_pids; i++) {
                double sys, s = proc_cpu_s(b->daemon_pid[i], NULL, &sys);
                if (s < 0)
                        return -1;
                sum += s;
                sys_sum += sys;
        }
        *ret_sys = sys_sum;
        return sum;
}

/* Busy and total jiffies of the whole machine (all CPUs). */
static int machine_cpu(unsigned long long *ret_busy, unsigned long long *ret_total) {
        unsigned long long v[8] = {}, total = 0;
        FILE *f = fopen("/proc/stat", "re");
        if (!f)
                return -errno;
        int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                       &v[6], &v[7]);
        fclose(f);
        if (n < 5)
                return -EIO;
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                total += v[i];
        *ret_busy = total - v[3] - v[4]; /* minus idle and iowait */
        *ret_total = total;
        return 0;
}

static double self_cpu_s(double *ret_sys) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        *ret_sys = (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
               (double) ru.ru_stime.tv_usec / 1e6;
}

static void *worker_thread(void *p) {
        worker *w = p;
        bench *b = w->b;

        w->conn = hconn_new(b->socket[w->idx % b->n_daemons]);
        w->setup_r = !w->conn ? -ECONNREFUSED : w->op->setup ? w->op->setup(w) : 0;
        pthread_barrier_wait(&b->start);
        while (w->setup_r >= 0 && !atomic_load(&b->stop)) {
                uint64_t t0 = now_ns();
                int r = w->op->run(w);
                uint64_t t1 = now_ns();
                if (atomic_load(&b->stop) || r == -ENODATA)
                        break; /* finished after the window, or out of unique tokens: not counted */
                if (r < 0) {
                        w->errors++;
                        continue;
                }
                if (w->n_lat == w->cap_lat) {
                        size_t nc = w->cap_lat ? w->cap_lat * 2 : 4096;
                        uint64_t *v = realloc(w->lat, nc * sizeof *v);
                        if (!v)
                                break;
                        w->lat = v;
                        w->cap_lat = nc;
                }
                w->lat[w->n_lat++] = t1 - t0;
        }
        hconn_free(w->conn);
        w->conn = NULL;
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int measure(bench *b, const op *o, unsigned clients, result *ret) {
        _cleanup_(freep) worker *w = calloc(clients, sizeof *w);
        _cleanup_(freep) pthread_t *th = calloc(clients, sizeof *th);
        _cleanup_(freep) uint64_t *all = NULL;
        size_t n_all = 0;
        uint64_t errors = 0;
        int r = 0;

        if (!w || !th)
                return -ENOMEM;
        atomic_store(&b->stop, false);
        atomic_store(&b->exhausted, false);
        if (pthread_barrier_init(&b->start, NULL, clients + 1) != 0)
                return -ENOMEM;
        for (unsigned i = 0; i < clients; i++) {
                w[i] = (worker){ .b = b, .op = o, .idx = i };
                if (pthread_create(&th[i], NULL, worker_thread, &w[i]) != 0) {
                        fprintf(stderr, "bench-tokend: cannot start client thread %u\n", i);
                        abort(); /* the barrier would never open */
                }
        }
        pthread_barrier_wait(&b->start);
        unsigned long long mb0 = 0, mt0 = 0, mb1 = 0, mt1 = 0;
        (void) machine_cpu(&mb0, &mt0);
        double ds0 = 0, cs0, d0 = daemons_cpu_s(b, &ds0), c0 = self_cpu_s(&cs0), s0 = store_cpu_s(b);
        uint64_t t0 = now_ns();
        /* The window: b->seconds, or until the unique tokens run out. */
        uint64_t end = t0 + (uint64_t) (b->seconds * 1e9);
        for (uint64_t t = t0; t < end && !atomic_load(&b->exhausted); t = now_ns()) {
                uint64_t left = end - t < 10000000 ? end - t : 10000000; /* look every 10 ms */
                struct timespec nap = { .tv_sec = 0, .tv_nsec = (long) left };
                (void) nanosleep(&nap, NULL);
        }
        atomic_store(&b->stop, true);
        double wall = (double) (now_ns() - t0) / 1e9;
        double ds1 = 0, cs1, d1 = daemons_cpu_s(b, &ds1), c1 = self_cpu_s(&cs1), s1 = store_cpu_s(b);
        (void) machine_cpu(&mb1, &mt1);
        for (unsigned i = 0; i < clients; i++)
                pthread_join(th[i], NULL);
        pthread_barrier_destroy(&b->start);

        for (unsigned i = 0; i < clients; i++) {
                if (w[i].setup_r < 0)
                        r = w[i].setup_r;
                n_all += w[i].n_lat;
                errors += w[i].errors;
        }
        all = malloc((n_all ? n_all : 1) * sizeof *all);
        for (unsigned i = 0, k = 0; i < clients; i++) {
                if (all)
                        memcpy(all + k, w[i].lat, w[i].n_lat * sizeof *all);
                k += (unsigned) w[i].n_lat;
                free(w[i].lat);
                erase_and_free(w[i].refresh_req);
        }
        if (!all)
                return -ENOMEM;
        if (r < 0)
                return r;
        qsort(all, n_all, sizeof *all, cmp_u64);
        result res = { .ops = n_all, .errors = errors, .ops_per_s = (double) n_all / wall,
                       .exhausted = atomic_load(&b->exhausted) };
        if (n_all > 0) {
                res.p50_ms = (double) all[(n_all - 1) / 2] / 1e6;
                res.p99_ms = (double) all[(size_t) ((double) (n_all - 1) * 0.99)] / 1e6;
        }
        res.daemon_cores = d0 >= 0 && d1 >= 0 ? (d1 - d0) / wall : -1;
        res.client_cores = (c1 - c0) / wall;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        double busy = mt1 > mt0 ? (double) (mb1 - mb0) / (double) (mt1 - mt0) * (double) (ncpu > 0 ? ncpu : 1) : -1;
        res.others_cores = busy < 0 ? -1 : busy - res.client_cores - (res.daemon_cores > 0 ? res.daemon_cores : 0);
        if (busy >= 0 && res.others_cores < 0)
                res.others_cores = 0; /* jiffy rounding */
        res.store_cores = s0 >= 0 && s1 >= 0 ? (s1 - s0) / wall : -1;
        res.idle_cores = busy < 0 ? -1 : (double) (ncpu > 0 ? ncpu : 1) - busy;
        if (n_all > 0) {
                res.daemon_us_op = res.daemon_cores >= 0 ? (d1 - d0) * 1e6 / (double) n_all : -1;
                res.client_us_op = (c1 - c0) * 1e6 / (double) n_all;
                res.daemon_sys_us_op = res.daemon_cores >= 0 ? (ds1 - ds0) * 1e6 / (double) n_all : -1;
                res.client_sys_us_op = (cs1 - cs0) * 1e6 / (double) n_all;
        }
        *ret = res;
        return 0;
}

/* ---- raw Ed25519 verify ------------------------------------------------- */

typedef struct raw_ctx {
        const uint8_t *pk, *sig, *msg;
        size_t msg_len;
        double seconds;
        uint64_t n;
} raw_ctx;

static void *raw_verify_thread(void *p) {
        raw_ctx *c = p;
        uint64_t n = 0;
        double t0 = thread_cpu_s();
        do {
                for (unsigned i = 0; i < 64; i++)
                        if (crypto_sign_verify_detached(c->sig, c->msg, c->msg_len, c->pk) == 0)
                                n++;
        } while (thread_cpu_s() - t0 < c->seconds);
        c->n = n;
        c->seconds = thread_cpu_s() - t0;
        return NULL;
}

/* Single-thread rate (per CPU-second), and the wall-clock rate of `threads`
 * verifying threads at once (what the machine really delivers). */
static int raw_verify_rate(size_t msg_len, double seconds, unsigned threads, double *ret_one, double *ret_all) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
        _cleanup_(freep) uint8_t *msg = malloc(msg_len ? msg_len : 1);
        pthread_t th[MAX_CLIENTS];
        raw_ctx ctx[MAX_CLIENTS];

        if (!msg || threads == 0 || threads > MAX_CLIENTS)
                return -EINVAL;
        randombytes_buf(msg, msg_len);
        crypto_sign_keypair(pk, sk);
        crypto_sign_detached(sig, NULL, msg, msg_len, sk);
        sodium_memzero(sk, sizeof sk);

        raw_ctx one = { .pk = pk, .sig = sig, .msg = msg, .msg_len = msg_len, .seconds = seconds };
        raw_verify_thread(&one);
        if (one.n == 0)
                return -EIO;
        *ret_one = (double) one.n / one.seconds;

        uint64_t t0 = now_ns(), total = 0;
        unsigned started = 0;
        for (; started < threads; started++) {
                ctx[started] = one;
                ctx[started].n = 0;
                ctx[started].seconds = seconds;
                if (pthread_create(&th[started], NULL, raw_verify_thread, &ctx[started]) != 0)
                        break;
        }
        for (unsigned i = 0; i < started; i++) {
                pthread_join(th[i], NULL);
                total += ctx[i].n;
        }
        *ret_all = (double) total / ((double) (now_ns() - t0) / 1e9);
        return 0;
}

/* ---- raw JSON: what the API's JSON costs, with jansson, per verify ------ */

/* CPU µs, in this thread, of what every verify must do with JSON whatever
 * the daemon: parse the request body ({"token":...}, as td_json_parse_object
 * does), decode the token's header and claims (base64url, JSON), and dump
 * an answer of the claims' size (the claims object itself, plus "active").
 * -EINVAL if there is no pooled request (no verify op wanted). */
typedef struct raw_json {
        double body_us, token_us, answer_us;
} raw_json;

static int raw_json_cost(const bench *b, double seconds, raw_json *ret) {
        const char *body = b->pool && b->pool_n > 0 && b->pool[0].req ? strstr(b->pool[0].req, "\r\n\r\n") : NULL;
        if (!body || !b->probe_token)
                return -EINVAL;
        body += 4;
        size_t body_len = b->pool[0].len - (size_t) (body - b->pool[0].req), tok_len = strlen(b->probe_token);
        _cleanup_(json_decrefp) json_t *answer = NULL, *header = NULL;
        if (jws_decode_unverified(b->probe_token, tok_len, &header, &answer) < 0 ||
            json_object_set_new(answer, "active", json_true()) < 0)
                return -EBADMSG;
        double t[3], tb = thread_cpu_s();
        uint64_t n = 0;
        while (thread_cpu_s() - tb < seconds)
                for (unsigned i = 0; i < 64; i++, n++) {
                        json_t *j = NULL;
                        if (td_json_parse_object(body, body_len, body_len, 8, &j, NULL) < 0)
                                return -EBADMSG;
                        json_decref(j);
                }
        t[0] = thread_cpu_s();
        for (uint64_t i = 0; i < n; i++) {
                json_t *h = NULL, *p = NULL;
                if (jws_decode_unverified(b->probe_token, tok_len, &h, &p) < 0)
                        return -EBADMSG;
                json_decref(h);
                json_decref(p);
        }
        t[1] = thread_cpu_s();
        for (uint64_t i = 0; i < n; i++) {
                char *text = NULL;
                if (td_json_dump_compact(answer, &text) < 0)
                        return -ENOMEM;
                free(text);
        }
        t[2] = thread_cpu_s();
        ret->body_us = (t[0] - tb) * 1e6 / (double) n;
        ret->token_us = (t[1] - t[0]) * 1e6 / (double) n;
        ret->answer_us = (t[2] - t[1]) * 1e6 / (double) n;
        return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f) {
        fprintf(f, "usage: bench-tokend --socket PATH [--pid DAEMON_PID] [--seconds S] [--rounds N] [--pool N]\n"
                   "                    [--clients 1,2,8,64] [--ops null,verify,vrepeat,vconnect,issue,refresh]\n"
                   "                    [--key-dir DIR] [--issuer-socket PATH] [--store-pid PID]\n"
                   "                    [--extra-devices N]\n"
                   "null: GET /.well-known/oauth-authorization-server (the HTTP floor: no store read);\n"
                   "verify: unique tokens (never sent twice; minted with the daemon's key from --key-dir,\n"
                   "else the pool's, once each) over a kept-alive connection; vrepeat: one token per\n"
                   "client, again and again (pam_jwt's account phase); vconnect: unique tokens over a new\n"
                   "connection each time (as pam_jwt);\n"
                   "issue: peer POST /api/auth/token; refresh: rotation of each client's own chain.\n"
                   "--issuer-socket: tokens (the pool, the probe) come from this tokend, the measurements\n"
                   "go to --socket (a verifier of that issuer: only null and the verify ops make sense).\n"
                   "--socket (and --pid) again: more tokends sharing one store (at most %u); client i uses\n"
                   "the (i mod n)-th, tokens and refresh chains come from the first (or --issuer-socket).\n"
                   "--store-pid PID (e.g. PostgreSQL's postmaster): after each measurement, the CPU per\n"
                   "operation of tokend, that process with its children, this bench, the rest and idle.\n"
                   "--extra-devices N: the store holds N more devices than the pool's (the caller wrote\n"
                   "them; run-bench-tokend.sh's TOKEND_BENCH_EXTRA_DEVICES): only printed with the p99.\n",
                MAX_DAEMONS);
}

static int parse_clients(const char *s, unsigned v[static MAX_CLIENT_COUNTS], size_t *ret_n) {
        size_t n = 0;
        while (*s) {
                char *end;
                unsigned long c = strtoul(s, &end, 10);
                if (end == s || c == 0 || c > MAX_CLIENTS || n >= MAX_CLIENT_COUNTS || (*end && *end != ','))
                        return -EINVAL;
                v[n++] = (unsigned) c;
                s = *end ? end + 1 : end;
        }
        if (n == 0)
                return -EINVAL;
        *ret_n = n;
        return 0;
}

static bool op_wanted(const char *list, const char *name) {
        size_t l = strlen(name);
        for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, name, l) == 0 && (p[l] == ',' || p[l] == 0))
                        return true;
        return false;
}

/* The server end of our socket: the daemon's pid, via SO_PEERCRED. */
static pid_t daemon_pid_of(const char *socket_path) {
        hconn *c = hconn_new(socket_path);
        struct ucred uc;
        socklen_t l = sizeof uc;
        pid_t pid = 0;
        if (c && getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) == 0 && l == sizeof uc)
                pid = uc.pid;
        hconn_free(c);
        return pid;
}

static unsigned daemon_cores(pid_t pid) {
        cpu_set_t set;
        if (pid > 0 && sched_getaffinity(pid, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
                return (unsigned) CPU_COUNT(&set);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

static void print_load(const char *when) {
        char buf[128] = "?";
        FILE *f = fopen("/proc/loadavg", "re");
        if (f) {
                if (!fgets(buf, sizeof buf, f))
                        snprintf(buf, sizeof buf, "?");
                fclose(f);
        }
        buf[strcspn(buf, "\n")] = 0;
        printf("load average at %s: %s\n", when, buf);
        fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Index of the best and of the median (lower middle) of n results. */
static void best_median(const result *v, size_t n, size_t *ret_best, size_t *ret_median) {
        size_t idx[MAX_ROUNDS];
        for (size_t i = 0; i < n; i++)
                idx[i] = i;
        for (size_t i = 1; i < n; i++) /* insertion sort by ops/s, n is tiny */
                for (size_t k = i; k > 0 && v[idx[k]].ops_per_s < v[idx[k - 1]].ops_per_s; k--) {
                        size_t t = idx[k];
                        idx[k] = idx[k - 1];
                        idx[k - 1] = t;
                }
        *ret_best = idx[n - 1];
        *ret_median = idx[(n - 1) / 2];
}

/* verify ÷ (raw × cores), and ÷ (raw × (cores − what the client used)). */
static void verify_ratios(const result *r, double raw_one, unsigned cores, double *ret_all, double *ret_free) {
        double left = (double) cores - r->client_cores;
        *ret_all = r->ops_per_s / (raw_one * cores);
        *ret_free = left > 0 ? r->ops_per_s / (raw_one * left) : 0;
}

/* --store-pid: where the CPU of the window went, per operation (others:
 * the machine's busy time minus tokend, bench and store; idle: not busy). */
static void print_cpu_split(const result *x, pid_t store_pid) {
        double per_op = 1e6 / x->ops_per_s; /* µs per op of one CPU-second per second */
        double others = x->others_cores - (x->store_cores > 0 ? x->store_cores : 0);
        printf("      CPU us/op: tokend %.1f, store %.1f (pid %d and its children), bench %.1f, others %.1f, "
               "idle %.1f\n", x->daemon_us_op, x->store_cores * per_op, (int) store_pid, x->client_us_op,
               (others > 0 ? others : 0) * per_op, x->idle_cores * per_op);
}

static void print_head(void) {
        printf("%-8s %7s %9s %9s %8s %8s %6s %6s %6s %6s %8s %8s  %s\n", "op", "clients", "best/s", "median/s",
               "p50 ms", "p99 ms", "errors", "tokend", "bench", "others", "tokend", "bench",
               "verify best / raw x");
        printf("%-8s %7s %9s %9s %8s %8s %6s %6s %6s %6s %8s %8s  %s\n", "", "", "", "", "(median", "round)", "",
               "CPUs", "CPUs", "CPUs", "us/op", "us/op", "cores | (cores-bench)");
}

static void print_summary(const char *name, unsigned clients, const result *v, size_t n, bool is_verify,
                          double raw_one, unsigned cores) {
        size_t bi, mi;
        uint64_t errors = 0;
        char ratio[48] = "";

        best_median(v, n, &bi, &mi);
        for (size_t i = 0; i < n; i++)
                errors += v[i].errors;
        if (is_verify) {
                double all, left;
                verify_ratios(&v[bi], raw_one, cores, &all, &left);
                snprintf(ratio, sizeof ratio, "%5.1f%% | %5.1f%%", 100.0 * all, 100.0 * left);
        }
        const result *m = &v[mi];
        printf("%-8s %7u %9.0f %9.0f %8.3f %8.3f %6llu %6.2f %6.2f %6.2f %8.1f %8.1f  %s\n", name, clients,
               v[bi].ops_per_s, m->ops_per_s, m->p50_ms, m->p99_ms, (unsigned long long) errors, m->daemon_cores,
               m->client_cores, m->others_cores, m->daemon_us_op, m->client_us_op, ratio);
}

/* The best ops/s, the lowest tokend CPU µs per op and the 1-client p99 of
 * the median round (if 1 client ran) over every round and client count of
 * one op (res: _OP_MAX × MAX_CLIENT_COUNTS × rounds). */
typedef struct op_figures {
        const result *best;
        double min_us, p99_1;
        double min_sys_us, min_client_sys_us; /* the lowest kernel time per op, tokend's and the bench's */
} op_figures;

/* *min = v if v is a figure (> 0) below it, or *min is none yet (0). */
static void lowest(double *min, double v) {
        if (v > 0 && (*min == 0 || v < *min))
                *min = v;
}

static op_figures figures_of(const result *res, size_t o, size_t n_clients, const unsigned *clients,
                             unsigned rounds) {
        op_figures f = { .p99_1 = -1 };
        for (size_t k = 0; k < n_clients; k++) {
                const result *v = &res[(o * MAX_CLIENT_COUNTS + k) * rounds];
                for (unsigned round = 0; round < rounds; round++) {
                        const result *x = &v[round];
                        if (!f.best || x->ops_per_s > f.best->ops_per_s)
                                f.best = x;
                        lowest(&f.min_us, x->daemon_us_op);
                        lowest(&f.min_sys_us, x->daemon_sys_us_op);
                        lowest(&f.min_client_sys_us, x->client_sys_us_op);
                }
                if (clients[k] == 1) {
                        size_t bi, mi;
                        best_median(v, rounds, &bi, &mi);
                        f.p99_1 = v[mi].p99_ms;
                }
        }
        return f;
}

static void print_target(const char *what, double measured, const char *unit, bool at_least, double target,
                         const char *detail) {
        bool met = at_least ? measured >= target : measured <= target;
        printf("  %-44s %8.2f %-3s %2s %5.2f %-3s %-8s %s\n", what, measured, unit, at_least ? ">=" : "<=", target,
               unit, met ? "met" : "NOT met", detail);
}

/* What one HTTP request per verify allows at best, from this run's null
 * requests and raw JSON costs: the kernel time (stime) tokend and this
 * bench spend per request (the socket's recv and send, epoll and the
 * wake-ups; strace -c counts one recvfrom, one sendmsg and a fraction of
 * an epoll_wait per kept-alive request) is paid by every request whatever
 * tokend does in user space, and jansson's parse of the request and dump
 * of the answer by every verify (the token's decode too by a unique one).
 * So a unique verify costs the machine at least raw + JSON + both kernel
 * times, tokend at least raw + JSON + its kernel time, and a repeated
 * (cached) verify at least request + answer + both kernel times. Lowest
 * figures of any client count and round, so the floors are generous. A
 * target beyond its floor cannot be met with one HTTP request per verify
 * on this machine. Beside them, what the null request itself reached. */
static void print_floors(const bench *b, const char *want, const result *res, size_t n_clients,
                         const unsigned *clients, unsigned rounds, double raw_best, const raw_json *js) {
        double raw_us = 1e6 / raw_best, floor = raw_best * b->cores;
        op_figures n = figures_of(res, OP_NULL, n_clients, clients, rounds);
        double dsys = n.min_sys_us, csys = n.min_client_sys_us;
        if (dsys <= 0 || csys <= 0)
                return;
        printf("floors with one HTTP request per verify: kernel time per null request (lowest) tokend %.1f us, "
               "bench %.1f us; raw JSON (lowest round) %.1f us request + %.1f us token + %.1f us answer\n", dsys,
               csys, js->body_us, js->token_us, js->answer_us);
        /* A unique verify: the signature, the kernel, the three JSON texts;
         * a repeated one could keep the token's claims, not the rest. */
        double json_u = js->body_us + js->token_us + js->answer_us, json_r = js->body_us + js->answer_us;
        struct {
                const char *what, *op;
                double floor, target;
                bool at_least;
        } f[] = {
                { "unique-token verify at most", "verify", b->cores / ((raw_us + json_u + dsys + csys) * 1e-6) / floor,
                  UNIQUE_TARGET, true },
                { "tokend CPU per unique verify at least", "verify", (raw_us + json_u + dsys) / raw_us, CPU_TARGET,
                  false },
                { "repeated-token verify at most", "vrepeat", b->cores / ((json_r + dsys + csys) * 1e-6) / floor,
                  REPEAT_TARGET, true },
        };
        for (size_t i = 0; i < ELEMENTSOF(f); i++) {
                if (!op_wanted(want, f[i].op))
                        continue;
                bool within = f[i].at_least ? f[i].floor >= f[i].target : f[i].floor <= f[i].target;
                printf("  %-44s %8.2f x    target %.2f x: %s\n", f[i].what, f[i].floor, f[i].target,
                       within ? "within the floor" : "beyond the floor");
        }
        /* Side by side, not a bound: the null request builds a document
         * of its own, about what a repeated verify does in user space. */
        printf("  %-44s %8.2f x    tokend %.1f us CPU per request (lowest round)", "null request (verifies nothing)",
               n.best->ops_per_s / floor, n.min_us);
        if (op_wanted(want, "vrepeat")) {
                op_figures r = figures_of(res, OP_VREPEAT, n_clients, clients, rounds);
                printf("; a repeated verify reached %.0f%% of its best", 100 * r.best->ops_per_s / n.best->ops_per_s);
        }
        printf("\n");
}

/* Every target of issue 20 next to what this run measured. */
static void print_targets(const bench *b, const char *want, const result *res, size_t n_clients,
                          const unsigned *clients, unsigned rounds, double raw_best, const raw_json *js) {
        double raw_us = 1e6 / raw_best, floor = raw_best * b->cores;
        char d[160];

        printf("targets of issue 20 (verify near the physical floor), this run: raw = %.1f us per signature "
               "check (best round), raw x %u cores = %.0f/s\n", raw_us, b->cores, floor);
        printf("  %-44s %12s %12s %-8s %s\n", "", "measured", "target", "", "");
        if (op_wanted(want, "verify")) {
                op_figures f = figures_of(res, OP_VERIFY, n_clients, clients, rounds);
                double left = (double) b->cores - f.best->client_cores;
                snprintf(d, sizeof d, "best %.0f/s; %.2f x raw x (%u - %.2f bench CPUs)", f.best->ops_per_s,
                         left > 0 ? f.best->ops_per_s / (raw_best * left) : 0, b->cores, f.best->client_cores);
                print_target("unique-token verify / (raw x cores)", f.best->ops_per_s / floor, "x", true,
                             UNIQUE_TARGET, d);
                snprintf(d, sizeof d, "%.1f us CPU per verify (lowest round) vs %.1f us raw", f.min_us, raw_us);
                print_target("tokend CPU per unique verify / raw", f.min_us / raw_us, "x", false, CPU_TARGET, d);
                if (f.p99_1 >= 0)
                        printf("  %-44s %8.3f ms (with %llu devices in the store; the target, flat within "
                               "+-10%% from 1 k to 1 M devices, compares a run with TOKEND_BENCH_EXTRA_DEVICES="
                               "1000000 and one without)\n", "unique verify p99, 1 client", f.p99_1,
                               (unsigned long long) b->pool_n + 1 + b->extra_devices);
        }
        if (op_wanted(want, "vrepeat")) {
                op_figures f = figures_of(res, OP_VREPEAT, n_clients, clients, rounds);
                snprintf(d, sizeof d, "best %.0f/s; tokend %.1f us CPU per verify (lowest round)",
                         f.best->ops_per_s, f.min_us);
                print_target("repeated-token verify / (raw x cores)", f.best->ops_per_s / floor, "x", true,
                             REPEAT_TARGET, d);
        }
        if (op_wanted(want, "vconnect")) {
                op_figures f = figures_of(res, OP_VCONNECT, n_clients, clients, rounds);
                printf("  %-44s %8.2f x    (no target; best %.0f/s, tokend %.1f us CPU per verify)\n",
                       "unique verify, new connection each", f.best->ops_per_s / floor, f.best->ops_per_s,
                       f.min_us);
        }
        printf("  pamtester login through pam_jwt (auth + account) <= 1.1 x pam_permit: tests/bench/bench-pam; "
               "verifier mode: run-bench-tokend.sh --verifier; PostgreSQL: TOKEND_BENCH_DATABASE=postgresql://...\n");
        if (op_wanted(want, "null"))
                print_floors(b, want, res, n_clients, clients, rounds, raw_best, js);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' }, { "seconds", required_argument, NULL, 't' },
                { "pool", required_argument, NULL, 'p' },   { "clients", required_argument, NULL, 'c' },
                { "ops", required_argument, NULL, 'o' },    { "pid", required_argument, NULL, 'P' },
                { "rounds", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
                { "key-dir", required_argument, NULL, 'k' },
                { "issuer-socket", required_argument, NULL, 'I' },
                { "store-pid", required_argument, NULL, 'S' },
                { "extra-devices", required_argument, NULL, 'X' },
                {},
        };
        bench b = { .seconds = DEFAULT_SECONDS, .pool_n = DEFAULT_POOL };
        unsigned clients[MAX_CLIENT_COUNTS] = { 1, 2, 8, 64 }, rounds = DEFAULT_ROUNDS;
        size_t n_clients = 4;
        const char *want = "null,verify,vrepeat,vconnect,issue,refresh", *key_dir = NULL;
        double raw_one[MAX_ROUNDS], raw_all[MAX_ROUNDS];
        raw_json json_best = { 0 };
        int c, r;

        while ((c = getopt_long(argc, argv, "s:t:p:c:o:P:r:k:I:S:X:h", opts, NULL)) >= 0) {
                unsigned long v;
                switch (c) {
                case 's':
                        if (b.n_daemons == MAX_DAEMONS) {
                                usage(stderr);
                                return 2;
                        }
                        b.socket[b.n_daemons++] = optarg;
                        break;
                case 't':
                        b.seconds = strtod(optarg, NULL);
                        if (!(b.seconds >= 0.1 && b.seconds <= 3600)) {
                                usage(stderr);
                                return 2;
                        }
                        break;
                case 'p':
                        v = strtoul(optarg, NULL, 10);
                        if (v == 0 || v > POOL_MAX) {
                                usage(stderr);
                                return 2;
                        }
                        b.pool_n = v;
                        break;
                case 'r':
                        v = strtoul(optarg, NULL, 10);
                        if (v == 0 || v > MAX_ROUNDS) {
                                usage(stderr);
                                return 2;
                        }
                        rounds = (unsigned) v;
                        break;
                case 'c':
                        if (parse_clients(optarg, clients, &n_clients) < 0) {
                                usage(stderr);
                                return 2;
                        }
                        break;
                case 'o': want = optarg; break;
                case 'k': key_dir = optarg; break;
                case 'I': b.issuer_socket = optarg; break;
                case 'S': b.store_pid = (pid_t) strtol(optarg, NULL, 10); break;
                case 'X': b.extra_devices = strtoull(optarg, NULL, 10); break;
                case 'P':
                        if (b.n_pids == MAX_DAEMONS) {
                                usage(stderr);
                                return 2;
                        }
                        b.daemon_pid[b.n_pids++] = (pid_t) strtol(optarg, NULL, 10);
                        break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (b.n_daemons == 0 || (b.n_pids > 0 && b.n_pids != b.n_daemons) || optind != argc) {
                usage(stderr);
                return 2;
        }
        if (!b.issuer_socket)
                b.issuer_socket = b.socket[0];
        if (sodium_init() < 0)
                return 1;
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < b.n_daemons; i++) {
                if (i >= b.n_pids)
                        b.daemon_pid[i] = daemon_pid_of(b.socket[i]);
                if (b.daemon_pid[i] <= 0) {
                        fprintf(stderr, "bench-tokend: cannot reach tokend at %s\n", b.socket[i]);
                        return 3;
                }
        }
        b.n_pids = b.n_daemons;
        b.cores = daemon_cores(b.daemon_pid[0]);
        if (http_build("POST", "/api/auth/token", ISSUE_BODY, &b.issue_req, &b.issue_req_len) < 0 ||
            http_build("GET", "/.well-known/oauth-authorization-server", NULL, &b.null_req, &b.null_req_len) < 0)
                return 1;
        _cleanup_(freep) result *res = calloc(_OP_MAX * MAX_CLIENT_COUNTS * rounds, sizeof *res);
        if (!res)
                return 1;
#define RES(o, k, round) res[((o) * MAX_CLIENT_COUNTS + (k)) * rounds + (round)]

        print_load("start");
        if (b.n_daemons == 1)
                printf("tokend pid %d at %s; ", (int) b.daemon_pid[0], b.socket[0]);
        else {
                printf("%zu tokends (client i uses the (i mod %zu)-th; tokens and refresh chains set up through "
                       "%s; CPU summed):", b.n_daemons, b.n_daemons, b.issuer_socket);
                for (size_t i = 0; i < b.n_daemons; i++)
                        printf(" pid %d at %s%s", (int) b.daemon_pid[i], b.socket[i],
                               i + 1 < b.n_daemons ? "," : ";");
                printf("\n");
        }
        printf("daemon may use %u CPU(s), this machine has %ld; %.1f s per measurement, %u rounds\n", b.cores,
               sysconf(_SC_NPROCESSORS_ONLN), b.seconds, rounds);
        if ((r = probe(&b)) < 0) {
                fprintf(stderr, "bench-tokend: a peer token (POST /api/auth/token) failed: %s\n", strerror(-r));
                return 1;
        }
        printf("peer tokens for %s, audience %s: %zu bytes, signing input %zu bytes\n", b.user, BENCH_AUDIENCE,
               b.token_len, b.signing_input_len);
        if (op_wanted(want, "verify") || op_wanted(want, "vconnect") || op_wanted(want, "vrepeat")) {
                uint64_t t0 = now_ns();
                if ((r = pool_fill(&b)) < 0) {
                        fprintf(stderr, "bench-tokend: issuing the token pool failed: %s\n", strerror(-r));
                        return 1;
                }
                printf("token pool ready: %zu distinct tokens (each of its own device) in %.1f s\n", b.pool_n,
                       (double) (now_ns() - t0) / 1e9);
                if (key_dir && (r = mint_setup(&b, key_dir)) < 0) {
                        fprintf(stderr, "bench-tokend: no key of the daemon's tokens in %s: %s\n", key_dir,
                                strerror(-r));
                        return 1;
                }
                printf("unique tokens: %s\n", b.mint_key ? "minted before each measurement with the daemon's "
                       "active key (fresh jti, the pool's devices)" : "the pool's, once each (no --key-dir): "
                       "a measurement ends when they run out");
        }
        printf("\n%-5s %-8s %7s %9s %8s %8s %6s %6s %6s %6s\n", "round", "op", "clients", "ops/s", "p50 ms",
               "p99 ms", "errors", "tokend", "bench", "others");
        fflush(stdout);

        for (unsigned round = 0; round < rounds; round++) {
                r = raw_verify_rate(b.signing_input_len, RAW_SECONDS, b.cores, &raw_one[round], &raw_all[round]);
                if (r < 0)
                        return 1;
                printf("%-5u raw Ed25519 verify: %.0f/s per CPU-second, %.0f/s wall with %u threads\n", round + 1,
                       raw_one[round], raw_all[round], b.cores);
                raw_json js;
                r = raw_json_cost(&b, RAW_SECONDS / 2, &js);
                if (r < 0 && r != -EINVAL) {
                        fprintf(stderr, "bench-tokend: raw JSON: %s\n", strerror(-r));
                        return 1;
                }
                if (r >= 0)
                        printf("%-5u raw JSON per verify (jansson, one thread): request %.2f us, token %.2f us, "
                               "answer %.2f us\n", round + 1, js.body_us, js.token_us, js.answer_us);
                if (r >= 0 && (round == 0 || js.body_us + js.token_us + js.answer_us <
                                               json_best.body_us + json_best.token_us + json_best.answer_us))
                        json_best = js;
                fflush(stdout); /* run-bench-tokend.sh --profile waits for this line */
                for (size_t i = 0; i < _OP_MAX; i++) {
                        if (!op_wanted(want, ops[i].name))
                                continue;
                        for (size_t k = 0; k < n_clients; k++) {
                                result *x = &RES(i, k, round);
                                if (b.mint_key && (i == OP_VERIFY || i == OP_VCONNECT)) {
                                        /* Enough for raw × cores (no verify of a new token is
                                         * faster), or twice the last round's rate. */
                                        double rate = raw_one[round] * b.cores;
                                        if (round > 0 && 2 * RES(i, k, round - 1).ops_per_s < rate)
                                                rate = 2 * RES(i, k, round - 1).ops_per_s;
                                        double need = rate * b.seconds * MINT_SLACK + 1000;
                                        uint64_t t0 = now_ns();
                                        if ((r = mint(&b, need < MINT_MAX ? (size_t) need : MINT_MAX)) < 0) {
                                                fprintf(stderr, "bench-tokend: minting tokens failed: %s\n",
                                                        strerror(-r));
                                                return 1;
                                        }
                                        /* run-bench-tokend.sh --profile waits for this line */
                                        printf("      %zu unique tokens minted in %.1f s (untimed)\n", b.uniq_n,
                                               (double) (now_ns() - t0) / 1e9);
                                        fflush(stdout);
                                }
                                r = measure(&b, &ops[i], clients[k], x);
                                if (r < 0) {
                                        fprintf(stderr, "bench-tokend: %s with %u clients failed: %s\n",
                                                ops[i].name, clients[k], strerror(-r));
                                        return 1;
                                }
                                printf("%-5u %-8s %7u %9.0f %8.3f %8.3f %6llu %6.2f %6.2f %6.2f%s\n", round + 1,
                                       ops[i].name, clients[k], x->ops_per_s, x->p50_ms, x->p99_ms,
                                       (unsigned long long) x->errors, x->daemon_cores, x->client_cores,
                                       x->others_cores, x->exhausted ? "  (ran out of unique tokens)" : "");
                                if (b.store_pid > 0 && x->ops > 0)
                                        print_cpu_split(x, b.store_pid);
                                fflush(stdout);
                        }
                }
        }

        double sorted[MAX_ROUNDS], raw_best = 0;
        memcpy(sorted, raw_one, rounds * sizeof *sorted);
        qsort(sorted, rounds, sizeof *sorted, cmp_double);
        raw_best = sorted[rounds - 1];
        printf("\nraw Ed25519 verify (crypto_sign_verify_detached, %zu-byte message), %u rounds: best %.0f/s, "
               "median %.0f/s per CPU-second; x %u cores = %.0f/s (the ratios use the best)\n",
               b.signing_input_len, rounds, raw_best, sorted[(rounds - 1) / 2], b.cores, raw_best * b.cores);
        memcpy(sorted, raw_all, rounds * sizeof *sorted);
        qsort(sorted, rounds, sizeof *sorted, cmp_double);
        printf("raw with %u threads at once, wall clock (what this shared machine gave): best %.0f/s, median "
               "%.0f/s\n\n", b.cores, sorted[rounds - 1], sorted[(rounds - 1) / 2]);
        print_head();
        for (size_t i = 0; i < _OP_MAX; i++)
                if (op_wanted(want, ops[i].name))
                        for (size_t k = 0; k < n_clients; k++)
                                print_summary(ops[i].name, clients[k], &RES(i, k, 0), rounds,
                                              i == OP_VERIFY || i == OP_VCONNECT || i == OP_VREPEAT, raw_best,
                                              b.cores);

        printf("\n");
        print_targets(&b, want, res, n_clients, clients, rounds, raw_best, &json_best);
        if (op_wanted(want, "refresh")) {
                double best = 0;
                for (size_t k = 0; k < n_clients; k++)
                        for (unsigned round = 0; round < rounds; round++)
                                if (RES(OP_REFRESH, k, round).ops_per_s > best)
                                        best = RES(OP_REFRESH, k, round).ops_per_s;
                printf("refresh with rotation (durable commit): best %.0f/s (target >= %.0f/s: %s)\n", best,
                       REFRESH_TARGET, best >= REFRESH_TARGET ? "met" : "NOT met");
        }
        print_load("end");
#undef RES
        return 0;
}
