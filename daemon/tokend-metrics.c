/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-metrics.h"

#define MAX_SERIES 128U   /* (endpoint, status) pairs; later ones go to "other" */
#define MAX_ENDPOINTS 48U /* latency histograms */
#define MAX_FRONTENDS 4U

/* Latency buckets, seconds (Prometheus: le is inclusive). */
static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define N_BUCKETS ELEMENTSOF(buckets)

typedef struct series {
        const char *endpoint;
        unsigned status;
        uint64_t count;
} series;

typedef struct histogram {
        const char *endpoint;
        uint64_t bucket[N_BUCKETS]; /* not cumulative here; summed when printed */
        uint64_t count;
        double sum;
} histogram;

/* The operations DESIGN.md names, by result (derived from the answer). */
typedef enum op {
        OP_LOGIN,
        OP_REFRESH,
        OP_VERIFY,
        _OP_MAX,
} op;
static const char *const op_paths[_OP_MAX] = { "/api/auth/login", "/api/auth/refresh", "/api/auth/verify" };
static const char *const op_names[_OP_MAX] = { "tokend_logins_total", "tokend_refreshes_total",
                                               "tokend_verifications_total" };
static const char *const op_help[_OP_MAX] = { "Password logins by result.", "Refreshes by result.",
                                              "Token verifications by result." };
typedef enum result {
        RES_SUCCESS,
        RES_REFUSED,   /* 4xx other than 429: bad credentials or token, a bad request */
        RES_THROTTLED, /* 429 */
        RES_ERROR,     /* 5xx */
        _RES_MAX,
} result;
static const char *const result_names[_RES_MAX] = { "success", "refused", "throttled", "error" };

struct tokend_metrics {
        pthread_mutex_t lock;
        series series[MAX_SERIES + 1]; /* the last: every pair beyond the cap */
        size_t n_series;
        histogram hist[MAX_ENDPOINTS + 1];
        size_t n_hist;
        uint64_t ops[_OP_MAX][_RES_MAX];
        uint64_t unavailable; /* 503: the store was busy or failed */
        struct {
                const char *name;
                int64_t open;
        } conns[MAX_FRONTENDS];
};

int metrics_new(tokend_metrics **ret) {
        tokend_metrics *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        m->series[MAX_SERIES].endpoint = "other";
        m->hist[MAX_ENDPOINTS].endpoint = "other";
        *ret = m;
        return 0;
}

void metrics_free(tokend_metrics *m) {
        if (!m)
                return;
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static result result_of(unsigned status) {
        return status < 300 ? RES_SUCCESS : status == 429 ? RES_THROTTLED : status >= 500 ? RES_ERROR : RES_REFUSED;
}

void metrics_request(tokend_metrics *m, const char *endpoint, unsigned status, int64_t usec) {
        if (!m)
                return;
        endpoint = endpoint ? endpoint : "unknown";
        double s = usec > 0 ? (double) usec / 1e6 : 0;
        pthread_mutex_lock(&m->lock);
        size_t i;
        for (i = 0; i < m->n_series; i++)
                if (m->series[i].status == status && streq(m->series[i].endpoint, endpoint))
                        break;
        if (i == m->n_series && i < MAX_SERIES)
                m->series[m->n_series++] = (series) { .endpoint = endpoint, .status = status };
        m->series[i < MAX_SERIES ? i : MAX_SERIES].count++;
        for (i = 0; i < m->n_hist; i++)
                if (streq(m->hist[i].endpoint, endpoint))
                        break;
        if (i == m->n_hist && i < MAX_ENDPOINTS)
                m->hist[m->n_hist++].endpoint = endpoint;
        histogram *h = &m->hist[i < MAX_ENDPOINTS ? i : MAX_ENDPOINTS];
        size_t b = 0;
        while (b < N_BUCKETS && s > buckets[b])
                b++;
        if (b < N_BUCKETS)
                h->bucket[b]++;
        h->count++;
        h->sum += s;
        for (op o = 0; o < _OP_MAX; o++)
                if (streq(endpoint, op_paths[o]))
                        m->ops[o][result_of(status)]++;
        if (status == 503)
                m->unavailable++;
        pthread_mutex_unlock(&m->lock);
}

void metrics_connection(tokend_metrics *m, const char *frontend, int delta) {
        if (!m)
                return;
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < MAX_FRONTENDS; i++)
                if (!m->conns[i].name || streq(m->conns[i].name, frontend)) {
                        m->conns[i].name = frontend;
                        m->conns[i].open += delta;
                        break;
                }
        pthread_mutex_unlock(&m->lock);
}

/* Seconds since t (unix time), +Inf for never (t 0). */
static void print_age(FILE *f, const char *name, const char *help, int64_t t, int64_t now) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
        if (t == 0)
                fprintf(f, "%s +Inf\n", name);
        else
                fprintf(f, "%s %lld\n", name, (long long) (now > t ? now - t : 0));
}

static void print_by_result(FILE *f, const char *name, const char *help, const char *const *names,
                            const uint64_t *counts, size_t n) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s{result=\"%s\"} %llu\n", name, names[i], (unsigned long long) counts[i]);
}

static void format_verifier(FILE *f, const verifier_status *vs, int64_t now) {
        fprintf(f, "# HELP tokend_verifier_feed_seq The revocation feed's sequence number applied.\n"
                "# TYPE tokend_verifier_feed_seq gauge\ntokend_verifier_feed_seq %lld\n", (long long) vs->seq);
        print_age(f, "tokend_verifier_feed_staleness_seconds",
                  "Seconds since the last good revocation feed answer (+Inf: none yet).", vs->last_ok, now);
        fprintf(f, "# HELP tokend_verifier_feed_max_staleness_seconds MaxStaleness=: older than this, the feed is "
                "stale.\n# TYPE tokend_verifier_feed_max_staleness_seconds gauge\n"
                "tokend_verifier_feed_max_staleness_seconds %lld\n", (long long) vs->max_staleness);
        print_by_result(f, "tokend_verifier_feed_answers_total",
                        "Revocation feed answers, applied or refused by reason.", verifier_feed_result_names,
                        vs->feed_answers, _VFEED_MAX);
        fprintf(f, "# HELP tokend_verifier_feed_unreachable_total Feed requests that got no 200 answer.\n"
                "# TYPE tokend_verifier_feed_unreachable_total counter\n"
                "tokend_verifier_feed_unreachable_total %llu\n", (unsigned long long) vs->unreachable);
        fprintf(f, "# HELP tokend_verifier_revoked Revoked entries held, by kind.\n"
                "# TYPE tokend_verifier_revoked gauge\n"
                "tokend_verifier_revoked{kind=\"device\"} %zu\ntokend_verifier_revoked{kind=\"jti\"} %zu\n",
                vs->revoked_devices, vs->revoked_jtis);
        print_age(f, "tokend_verifier_jwks_age_seconds",
                  "Seconds since the issuer's JWKS in use was fetched (+Inf: none).", vs->jwks_fetched, now);
        fprintf(f, "# HELP tokend_verifier_jwks_keys Usable keys in the issuer's JWKS in use.\n"
                "# TYPE tokend_verifier_jwks_keys gauge\ntokend_verifier_jwks_keys %zu\n", vs->jwks_keys);
        print_by_result(f, "tokend_verifier_jwks_refreshes_total", "JWKS fetches from the issuer, by result.",
                        verifier_jwks_result_names, vs->jwks_results, _VJWKS_MAX);
        print_by_result(f, "tokend_verifier_verifications_total", "Token verifications on this host, by result.",
                        verifier_check_result_names, vs->checks, _VCHECK_MAX);
}

int metrics_format(tokend_metrics *m, unsigned signing_keys, const verifier_status *vs, int64_t now, char **ret) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        if (!m)
                goto keys;
        pthread_mutex_lock(&m->lock);
        fputs("# HELP tokend_http_requests_total HTTP requests answered, by endpoint and status.\n"
              "# TYPE tokend_http_requests_total counter\n", f);
        for (size_t i = 0; i <= MAX_SERIES; i++)
                if (i < m->n_series || (i == MAX_SERIES && m->series[i].count))
                        fprintf(f, "tokend_http_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                                m->series[i].endpoint, m->series[i].status, (unsigned long long) m->series[i].count);
        fputs("# HELP tokend_http_request_duration_seconds Time from a request's arrival to its answer.\n"
              "# TYPE tokend_http_request_duration_seconds histogram\n", f);
        for (size_t i = 0; i <= MAX_ENDPOINTS; i++) {
                const histogram *h = &m->hist[i];
                if (i >= m->n_hist && (i != MAX_ENDPOINTS || !h->count))
                        continue;
                uint64_t cum = 0;
                for (size_t b = 0; b < N_BUCKETS; b++) {
                        cum += h->bucket[b];
                        fprintf(f, "tokend_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                                h->endpoint, buckets[b], (unsigned long long) cum);
                }
                fprintf(f, "tokend_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n"
                        "tokend_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n"
                        "tokend_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                        h->endpoint, (unsigned long long) h->count, h->endpoint, h->sum, h->endpoint,
                        (unsigned long long) h->count);
        }
        for (op o = 0; o < _OP_MAX; o++) {
                fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", op_names[o], op_help[o], op_names[o]);
                for (result r = 0; r < _RES_MAX; r++)
                        fprintf(f, "%s{result=\"%s\"} %llu\n", op_names[o], result_names[r],
                                (unsigned long long) m->ops[o][r]);
        }
        fprintf(f, "# HELP tokend_unavailable_total Answers 503: the store was busy or failed.\n"
                "# TYPE tokend_unavailable_total counter\ntokend_unavailable_total %llu\n",
                (unsigned long long) m->unavailable);
        fputs("# HELP tokend_connections Connections open, by front end.\n# TYPE tokend_connections gauge\n", f);
        for (size_t i = 0; i < MAX_FRONTENDS && m->conns[i].name; i++)
                fprintf(f, "tokend_connections{frontend=\"%s\"} %lld\n", m->conns[i].name,
                        (long long) m->conns[i].open);
        pthread_mutex_unlock(&m->lock);
keys:
        fprintf(f, "# HELP tokend_signing_keys Keys in the key directory (every one verifies).\n"
                "# TYPE tokend_signing_keys gauge\ntokend_signing_keys %u\n", signing_keys);
        if (vs)
                format_verifier(f, vs, now);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

bool metrics_caller_allowed(const td_caller *c) {
        struct in_addr a4;
        struct in6_addr a6;
        if (!td_caller_is_remote(c))
                return c->uid == 0;
        if (c->subject)
                return true;
        if (inet_pton(AF_INET, c->remote, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, c->remote, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
