/* SPDX-License-Identifier: MIT */
/* tokend's counters for GET /metrics (Prometheus text exposition format
 * 0.0.4): HTTP requests by endpoint and status, their latency, logins,
 * refreshes and verifications by result, connections open per front end.
 * One table per daemon (tokend.metrics), shared by the HTTP front ends;
 * thread-safe (one mutex: a few hundred nanoseconds a request). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tokend-service.h"
#include "tokend-verifier.h"

typedef struct tokend_metrics tokend_metrics;

/* 0 and *ret, or -ENOMEM. */
int metrics_new(tokend_metrics **ret);
/* Accepts NULL. */
void metrics_free(tokend_metrics *m);

/* One HTTP answer: endpoint is a route path with static storage (or NULL:
 * no such endpoint), status the HTTP status, usec the time from the
 * request's first byte to its completion. Accepts m == NULL. */
void metrics_request(tokend_metrics *m, const char *endpoint, unsigned status, int64_t usec);

/* A connection opened (+1) or closed (-1) on front end frontend ("socket",
 * "network": static strings). Accepts m == NULL. */
void metrics_connection(tokend_metrics *m, const char *frontend, int delta);

/* The exposition text (malloc'ed) with signing_keys as a gauge (m NULL:
 * only that) and, on a verifier (vs not NULL), its feed, JWKS and
 * verifications (tokend_verifier_*, ages and staleness against now, unix
 * seconds). 0 or -ENOMEM. */
int metrics_format(tokend_metrics *m, unsigned signing_keys, const verifier_status *vs, int64_t now, char **ret);

/* Who may read the metrics: root on the socket; over TCP a loopback client
 * (127.0.0.0/8, ::1) or one whose client certificate was verified. */
bool metrics_caller_allowed(const td_caller *c);
