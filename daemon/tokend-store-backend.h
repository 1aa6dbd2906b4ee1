/* SPDX-License-Identifier: MIT */
/* The inside of the store: what a backend (tokend-store-sqlite.c,
 * tokend-store-pg.c) implements for the interface (tokend-store.c), and the
 * rules both share so they cannot drift apart (rotation verdicts, reuse
 * evidence, pruning bounds, audit overflow rows). Private to the store:
 * include it from tokend-store*.c only. The interface validates every
 * argument (lengths, required fields, ranges) before calling a backend, so
 * backends trust theirs; they return the -errno codes of tokend-store.h. */
#pragma once

#include "tokend-store.h"

typedef struct store_backend store_backend; /* one backend's connections */

/* store_refresh_rotate()'s arguments, validated. */
typedef struct store_rotate_req {
        const char *device_id;
        const uint8_t *presented, *new_hash; /* new_hash NULL: check only */
        int64_t now, new_expires, reuse_grace;
        int64_t feed_until;   /* the log entry's until if this revokes the device (reuse) */
        const store_audit *a; /* may be NULL */
} store_rotate_req;

/* A presented refresh token as stored. */
typedef struct store_token_row {
        int64_t generation;
        int64_t expires;  /* 0 = never */
        bool is_rotated;
        int64_t rotated;  /* valid if is_rotated */
} store_token_row;

/* What one backend does. Every operation is atomic; the pointers are never
 * NULL and the arguments are those of tokend-store.h, already validated
 * (devices_list gets the cursor resolved: from (created, id) exclusive). */
typedef struct store_ops {
        const char *name;
        int (*open)(const char *location, store_backend **ret);
        void (*close)(store_backend *b);
        int (*schema_version)(store_backend *b);
        int (*integrity_check)(store_backend *b);
        int (*device_create)(store_backend *b, const store_device *d, const uint8_t *refresh_hash,
                             int64_t refresh_expires, unsigned max_devices, const store_audit *a);
        int (*refresh_rotate)(store_backend *b, const store_rotate_req *q, store_rotate_result *res);
        int (*device_get)(store_backend *b, const char *id, store_device *ret);
        int (*devices_list)(store_backend *b, const char *user, int64_t created, const char *id, size_t limit,
                            store_device **ret, size_t *ret_n, bool *ret_more);
        /* Revoking also appends the log entry (device, when, feed_until). */
        int (*device_revoke)(store_backend *b, const char *id, const char *reason, int64_t when,
                             int64_t feed_until, const store_audit *a);
        int (*device_touch)(store_backend *b, const char *id, int64_t now);
        /* Also appends the log entry (jti, now, expires). */
        int (*jti_revoke)(store_backend *b, const char *jti, int64_t now, int64_t expires);
        int (*jti_is_revoked)(store_backend *b, const char *jti);
        int (*device_jti_get)(store_backend *b, const char *id, const char *jti, store_device *ret,
                              bool *ret_jti_revoked);
        int (*proof_jti_use)(store_backend *b, const char *jti, int64_t expires);
        int (*audit_add)(store_backend *b, const store_audit *a);
        int (*audit_coalesce)(store_backend *b, const store_audit *a, int64_t window);
        int (*audit_list)(store_backend *b, const char *user, int64_t below, size_t limit,
                          store_audit_entry **ret, size_t *ret_n, bool *ret_more);
        int (*prune)(store_backend *b, int64_t now);
        int (*key_publish)(store_backend *b, const char *kid, const char *jwk, int64_t now, int64_t retire_after);
        int (*keys_list)(store_backend *b, int64_t now, store_published_key **ret, size_t *ret_n);
        /* The revocation log (tokend-store.h): seq order is commit order. */
        int (*revocations_list)(store_backend *b, int64_t after, int64_t valid_at, size_t limit,
                                store_revocation **ret, size_t *ret_n, int64_t *ret_seq);
} store_ops;

extern const store_ops store_sqlite_ops;
extern const store_ops store_pg_ops;

/* ------------------------------------------------------------ shared rules */

/* Where a rotation goes once the presented token t of a device (revoked or
 * not) has been read inside the rotation's transaction. */
typedef enum store_verdict {
        VERDICT_REVOKED,  /* device revoked → -EKEYREVOKED */
        VERDICT_RACE,     /* rotated within the grace → -EALREADY, nothing written */
        VERDICT_REUSE,    /* rotated before: theft → revoke the device (store_reuse_evidence) */
        VERDICT_EXPIRED,  /* → -EKEYEXPIRED */
        VERDICT_CURRENT,  /* check only: it is the current token → 0 */
        VERDICT_ROTATE,   /* rotate it */
} store_verdict;

store_verdict store_rotate_verdict(const store_rotate_req *q, bool device_revoked, const store_token_row *t);

/* The audit row a detected reuse writes (detail formatted into buf), and
 * the device as it is after the reuse revocation (res->device updated,
 * res->reuse_detected set). The backend writes the revocation (reason
 * "refresh_reuse", at q->now) and *ret_audit in the same transaction, keeps
 * it committed and answers -EKEYREVOKED. */
void store_reuse_evidence(const store_rotate_req *q, const store_token_row *t, store_rotate_result *res,
                          char *buf, size_t size, store_audit *ret_audit);

/* Pruning, in this order; each deletes rows older than now - before_now. */
typedef enum store_prune_kind {
        PRUNE_CHAINS,           /* every token of a device whose current token expired */
        PRUNE_ROTATED,          /* rotated tokens rotated before the bound */
        PRUNE_JTIS,             /* revoked jtis expired before the bound */
        PRUNE_PROOFS,           /* proof jtis expired before the bound */
        PRUNE_REVOKED_DEVICES,  /* devices revoked before the bound */
        PRUNE_DEAD_DEVICES,     /* devices unused since the bound and without tokens */
        PRUNE_AUDIT,            /* audit rows older than the bound */
        PRUNE_KEYS,             /* published keys retired before the bound */
        PRUNE_REVOCATIONS,      /* revocation log entries whose until is before the bound */
        _PRUNE_MAX,
} store_prune_kind;

extern const int64_t store_prune_before_now[_PRUNE_MAX];

/* The row that counts a's event once STORE_AUDIT_COALESCE_KEYS distinct
 * keys of its event and caller were started within window (detail in buf). */
void store_audit_overflow(const store_audit *a, int64_t window, char *buf, size_t size, store_audit *ret);

/* A listing page of n rows fetched with LIMIT limit + 1: trims the extra
 * row, sets *ret_more, frees the array when empty. */
void store_page_finish(void **v, size_t *n, size_t limit, bool *ret_more);
