/* SPDX-License-Identifier: MIT */
/* tokend's persistent state: devices (enrolments), refresh-token hashes with
 * their rotation chain, revoked access-token ids, the device-proof replay
 * cache and the audit log. One opaque handle, safe to share between threads,
 * with two backends behind it (tokend-store-backend.h): SQLite (WAL) on a
 * path, PostgreSQL on a postgresql:// URI; no SQL in this interface. Every
 * operation is atomic and serialised with the others (SQLite: its own
 * savepoint inside a group-commit transaction that it may share with
 * concurrent callers, one fsync for all of them). Errors: -ENOENT not found,
 * -EEXIST duplicate, -EBUSY database locked after STORE_BUSY_TIMEOUT_MS or
 * unreachable / still conflicting after retries (try again later),
 * -ETIMEDOUT (PostgreSQL) a COMMIT's answer was lost and the server did
 * not tell in time whether it committed (try again later), -ENOSPC
 * disk full, -EINVAL bad argument (over-long string…), -EDQUOT a per-user cap
 * reached, -ENOMEM, -EIO anything else. Listings come in pages of at most
 * STORE_PAGE_MAX rows, so no answer grows with the database. Link:
 * daemon/libtdstore.la $(SQLITE_LIBS). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define STORE_HASH_LEN 32U              /* SHA-256 of a refresh token */
#define STORE_DEVICE_KEY_LEN 32U        /* Ed25519 public key */
#define STORE_DEVICE_ID_MAX 64U         /* "dev_" + random */
#define STORE_USER_MAX 256U             /* LOGIN_NAME_MAX */
#define STORE_DEVICE_NAME_MAX 128U
#define STORE_REASON_MAX 64U
#define STORE_JTI_MAX 128U
#define STORE_EVENT_MAX 32U
#define STORE_AUDIT_DETAIL_MAX 1024U
#define STORE_AUDIT_COALESCE_KEYS 32U   /* distinct coalesced rows per event and caller per window */
#define STORE_BUSY_TIMEOUT_MS 2000
#define STORE_RETENTION ((int64_t) 90 * 24 * 3600) /* audit rows, dead devices, old rotated tokens */
#define STORE_PAGE_MAX 1000U            /* rows in one listing page */
#define STORE_KID_MAX 128U
#define STORE_JWK_MAX 4096U             /* one public JWK (RSA-4096 fits) */
#define STORE_KEYS_MAX 64U              /* published keys listed at most */

typedef struct tokend_store tokend_store;

/* One device (enrolment). Fixed-size strings so the struct owns nothing:
 * copy it, free() arrays of it. */
typedef struct store_device {
        char id[STORE_DEVICE_ID_MAX + 1];
        char user[STORE_USER_MAX + 1];
        uid_t uid;
        char name[STORE_DEVICE_NAME_MAX + 1];      /* may be "" */
        int64_t created;
        int64_t last_used;
        bool has_public_key;
        uint8_t public_key[STORE_DEVICE_KEY_LEN]; /* Ed25519, valid if has_public_key */
        bool revoked;
        int64_t revoked_at;                        /* valid if revoked */
        char revoke_reason[STORE_REASON_MAX + 1];  /* "" unless revoked */
        int64_t password_auth;                     /* last password login of this device, 0 = never */
} store_device;

/* An audit event to write. Strings are borrowed; NULL = none. Never put a
 * secret (token, password, hash) into any field. */
typedef struct store_audit {
        int64_t time;
        const char *event;      /* required: "login", "token", "refresh", "logout", "revoke", … */
        const char *user;
        const char *device_id;
        int64_t caller_uid;     /* -1 = unknown */
        int64_t caller_pid;     /* -1 = unknown */
        const char *detail;     /* free text, ≤ STORE_AUDIT_DETAIL_MAX */
} store_audit;

/* An audit row read back. Absent strings are "". */
typedef struct store_audit_entry {
        int64_t id;
        int64_t time;
        char event[STORE_EVENT_MAX + 1];
        char user[STORE_USER_MAX + 1];
        char device_id[STORE_DEVICE_ID_MAX + 1];
        int64_t caller_uid;
        int64_t caller_pid;
        char detail[STORE_AUDIT_DETAIL_MAX + 1];
        int64_t count;          /* events this row stands for (1 unless coalesced) */
        int64_t last_time;      /* of the latest of them (== time when count is 1) */
} store_audit_entry;

/* Where a device listing resumes: after the device (created, id), the
 * order listings use. */
typedef struct store_device_cursor {
        int64_t created;
        char id[STORE_DEVICE_ID_MAX + 1];
} store_device_cursor;

typedef struct store_rotate_result {
        bool reuse_detected;   /* this call found a rotated token and revoked the device */
        uint64_t generation;   /* of the new token (first token of a device = 1) */
        store_device device;   /* the device as stored after this call */
} store_rotate_result;

/* Open and migrate the store at location to the current schema. A path is
 * SQLite: created with mode 0600 if missing (the parent directory must
 * exist), PRAGMA user_version, one transaction per migration, WAL mode,
 * foreign_keys=ON, synchronous=FULL (an acknowledged rotation survives power
 * loss), busy_timeout STORE_BUSY_TIMEOUT_MS. A postgresql:// (or
 * postgres://) URI is PostgreSQL (store_location_is_postgresql()): the
 * schema is versioned in table tokend_schema, migrated under an advisory
 * lock (issuers starting together migrate once). Returns 0 and *ret,
 * -ENOENT (parent missing), -EACCES, -EPROTONOSUPPORT (written by a newer
 * tokend), -ECONNREFUSED (no PostgreSQL server answers), -EBUSY, -EIO,
 * -ENOMEM. */
_warn_unused_result_ int store_open(const char *location, tokend_store **ret);

/* Whether location names a PostgreSQL database (postgresql:// or
 * postgres://) rather than a SQLite file. Such a URI may hold a password:
 * never log it. */
bool store_location_is_postgresql(const char *location);

/* "sqlite" or "postgresql": the backend s runs on. */
const char *store_backend_name(tokend_store *s);

/* What a committed write changed, for a cache of verification results in
 * this process (tokend-vcache.h): a device revoked (store_device_revoke,
 * also when it was revoked already; reuse detected by
 * store_refresh_rotate), a jti revoked (store_jti_revoke), the devices of a
 * user (store_device_create may delete dead ones), or anything
 * (store_prune deleted rows). Writes by other processes sharing the
 * database (PostgreSQL) are not seen. */
typedef enum store_change {
        STORE_CHANGED_DEVICE,
        STORE_CHANGED_JTI,
        STORE_CHANGED_USER,
        STORE_CHANGED_ALL,
} store_change;

typedef struct store_watch {
        /* Called after the commit, on the thread that wrote; key is the
         * device id, jti or user name (NULL for STORE_CHANGED_ALL). */
        void (*changed)(void *userdata, store_change what, const char *key);
        void *userdata;
} store_watch;

/* Watch s's writes (w NULL: stop). Set before other threads use s. */
void store_set_watch(tokend_store *s, const store_watch *w);

/* Close every connection. Accepts NULL. Callers must have stopped using it. */
void store_close(tokend_store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(tokend_store *, store_close);

/* Schema version of the open database (== the newest migration). */
int store_schema_version(tokend_store *s);

/* PRAGMA integrity_check + foreign_key_check. 0 if "ok", -EUCLEAN if not. */
int store_integrity_check(tokend_store *s);

/* Enrol: insert d (d->revoked must be false), its first refresh token
 * (generation 1, created = d->created, expires = refresh_expires, 0 = never)
 * and the audit row a (may be NULL) in one transaction. max_devices (≥ 1)
 * caps the device rows of d->user: when the user already has that many,
 * the least recently used of the user's dead devices (revoked, or without
 * a current refresh token valid at d->created) are deleted, with their
 * tokens, to make room; when every one is alive nothing is written and
 * -EDQUOT is returned. The count, the eviction and the insert are one
 * transaction, so concurrent enrolments cannot pass the cap. Returns 0,
 * -EDQUOT, -EEXIST (device id or token hash already present), -EINVAL. */
_warn_unused_result_ int store_device_create(tokend_store *s, const store_device *d,
                                             const uint8_t refresh_hash[STORE_HASH_LEN],
                                             int64_t refresh_expires, unsigned max_devices,
                                             const store_audit *a);

/* Rotate a refresh token (RFC 9700 §4.14.2), atomically, holding the write
 * lock from the lookup to the commit (no other rotation can interleave):
 *  - presented_hash unknown, or it belongs to another device → -ENOENT;
 *  - device revoked → -EKEYREVOKED;
 *  - presented token already rotated:
 *      · rotated at most reuse_grace seconds ago (reuse_grace > 0): a
 *        concurrent double refresh by the same client → -EALREADY, nothing
 *        changes and NO token is issued (the racing request got it);
 *      · otherwise theft: the device is revoked (reason "refresh_reuse"), an
 *        audit event "refresh_reuse" is written (caller uid/pid from a),
 *        committed → -EKEYREVOKED with ret->reuse_detected = true.
 *    This check comes before the expiry check: replaying an old rotated
 *    token is theft evidence even after that token's own expiry;
 *  - expired (expires != 0 && now >= expires) → -EKEYEXPIRED;
 *  - new_hash NULL (check only): the presented token is the device's
 *    current one → 0, nothing rotated or written (a is not used);
 *  - else: mark it rotated (now, replaced_by = new_hash), insert new_hash
 *    with generation + 1 and new_expires (0 = never), set last_used = now,
 *    write audit row a (may be NULL) → 0.
 * *ret is written on 0, -EALREADY, -EKEYREVOKED and -EKEYEXPIRED (the device
 * is known then), untouched otherwise. Also -EEXIST (new_hash collides),
 * -EINVAL, -EBUSY, -ENOSPC, -EIO. */
_warn_unused_result_ int store_refresh_rotate(tokend_store *s, const char *device_id,
                                              const uint8_t presented_hash[STORE_HASH_LEN],
                                              const uint8_t new_hash[STORE_HASH_LEN],
                                              int64_t now, int64_t new_expires, int64_t reuse_grace,
                                              const store_audit *a, store_rotate_result *ret);

/* Read one device into *ret. -ENOENT if there is no such id. */
_warn_unused_result_ int store_device_get(tokend_store *s, const char *id, store_device *ret);

/* One page of the devices of user (NULL: all), revoked ones included, in
 * (created, id) order: at most limit (1..STORE_PAGE_MAX) devices after
 * cursor after (NULL: from the first). *ret is a malloc'ed array of *ret_n
 * entries (NULL when 0) owned by the caller; *ret_more tells whether more
 * follow (the next page starts after the last entry). 0 or -EINVAL. */
int store_devices_list(tokend_store *s, const char *user, const store_device_cursor *after, size_t limit,
                       store_device **ret, size_t *ret_n, bool *ret_more);

/* Revoke a device (revoked_at = a->time or now when a is NULL, reason ≤
 * STORE_REASON_MAX) and write audit row a (may be NULL). Idempotent: returns 1
 * if this call revoked it, 0 if it was already revoked (nothing written, the
 * first reason is kept), -ENOENT. Its refresh tokens are kept so that later
 * presentations answer -EKEYREVOKED instead of -ENOENT. */
int store_device_revoke(tokend_store *s, const char *id, const char *reason, const store_audit *a);

/* Set last_used = now. 0 or -ENOENT. */
int store_device_touch(tokend_store *s, const char *id, int64_t now);

/* Remember that access token jti is revoked until expires (its exp). Idempotent
 * (keeps the later expiry). 0, -EINVAL (empty or > STORE_JTI_MAX). */
int store_jti_revoke(tokend_store *s, const char *jti, int64_t expires);

/* 1 if jti is revoked, 0 if not, -errno. */
_warn_unused_result_ int store_jti_is_revoked(tokend_store *s, const char *jti);

/* The verify path's one read: the device id (as store_device_get) and
 * whether access-token id jti is revoked (as store_jti_is_revoked), in one
 * statement (one snapshot; PostgreSQL: one round trip). 0, -ENOENT (no
 * such device), -EINVAL, -errno. */
_warn_unused_result_ int store_device_jti_get(tokend_store *s, const char *id, const char *jti, store_device *ret,
                                              bool *ret_jti_revoked);

/* Record the first use of a device-proof jti, kept until expires. Returns 0 on
 * first use, -EEXIST if it was seen before (replay), -EINVAL. */
_warn_unused_result_ int store_proof_jti_use(tokend_store *s, const char *jti, int64_t expires);

/* Append an audit row. 0, -EINVAL (no event, over-long fields). */
int store_audit_add(tokend_store *s, const store_audit *a);

/* Append a repeatable refusal or failure (token_denied, login_failed,
 * verify_failed, …) coalesced: when a row of the same event, user,
 * device_id, caller_uid and detail was started less than window seconds
 * before a->time, its count goes up by one and its last_time becomes
 * a->time (caller_pid stays the first event's). Otherwise a new row with
 * count 1, unless STORE_AUDIT_COALESCE_KEYS rows of this event and
 * caller_uid were already started within the window: then the event is
 * counted in one overflow row of that event and caller (no user or device,
 * the detail says so). So one event class of one caller adds at most
 * STORE_AUDIT_COALESCE_KEYS + 1 rows per window, whatever it sends.
 * Committed without synchronous=FULL when its group commit holds nothing
 * else (a power failure may lose the last counts, never other state).
 * 0, -EINVAL (as store_audit_add, or window < 1). */
int store_audit_coalesce(tokend_store *s, const store_audit *a, int64_t window);

/* One page of audit rows, optionally only those of user, newest first: at
 * most limit (1..STORE_PAGE_MAX) rows with an id below before (0: from the
 * newest). *ret: malloc'ed array of *ret_n entries (NULL when 0); *ret_more
 * tells whether older rows follow (the next page: before = the last id). */
int store_audit_list(tokend_store *s, const char *user, int64_t before, size_t limit,
                     store_audit_entry **ret, size_t *ret_n, bool *ret_more);

/* ------------------------------------------------------------ revocation log
 *
 * The issuer's revocation feed (DESIGN.md "Fleet"): every revocation
 * appends one entry to a log, in the same transaction as the revocation
 * itself: store_device_revoke() when it revokes (returns 1), the device a
 * store_refresh_rotate() reuse detection revokes, and every
 * store_jti_revoke(). Entries are numbered by a sequence number (seq) that
 * only grows, is never reused (not even after pruning) and survives
 * restarts, so a verifier that applied everything up to seq N asks for
 * what came after N.
 *
 * Contract for every backend: seq order is commit order. A reader that
 * sees entry N (or reports N as the high mark) must also see every entry
 * below N that will ever commit; otherwise a verifier is told "you are at
 * N" while N-1 is still in flight and skips N-1 for good (the classic trap
 * of sequence-ordered readers: two transactions take 10 and 11, 11 commits
 * first). SQLite serialises writers, so it cannot happen there.
 * PostgreSQL must not hand seq out of a SEQUENCE (nextval is not
 * transactional); it takes seq from a one-row counter updated inside the
 * revoking transaction (the row lock, held until commit, orders the
 * writers), and reads the list and the high mark in one snapshot. */

typedef enum store_revocation_kind {
        STORE_REVOKED_DEVICE = 1, /* id is a device id: every access token with client_id = id */
        STORE_REVOKED_JTI = 2,    /* id is an access token's jti */
} store_revocation_kind;

typedef struct store_revocation {
        int64_t seq;
        store_revocation_kind kind;
        char id[STORE_JTI_MAX + 1];
        int64_t at;    /* when it was revoked */
        int64_t until; /* no token it can refuse is valid after this: jti: the token's exp; device: at + the
                        * feed horizon (store_set_feed_horizon) */
} store_revocation;

/* How long after a device's revocation an access token it issued may
 * still be valid (the longest access-token lifetime plus ClockSkew): a
 * device entry's until is its revocation time plus this. Only grows
 * during the life of s (a reload that shortens the lifetime does not
 * shorten the entries of tokens issued before). seconds ≥ 0. */
void store_set_feed_horizon(tokend_store *s, int64_t seconds);

/* One page of the log: the entries after seq after (≥ 0) whose until is at
 * or after valid_at (the others can no longer refuse anything), in seq
 * order, at most limit (1..STORE_PAGE_MAX). *ret: malloc'ed array of
 * *ret_n entries (NULL when 0). *ret_seq: where the reader is after this
 * page: the last entry's seq when more follow, else the highest seq ever
 * assigned (0 when none), read in the same snapshot as the entries, so
 * asking again after *ret_seq misses nothing. 0, -EINVAL, -EBUSY, -EIO. */
_warn_unused_result_ int store_revocations_list(tokend_store *s, int64_t after, int64_t valid_at, size_t limit,
                                                store_revocation **ret, size_t *ret_n, int64_t *ret_seq);

/* Delete what can no longer matter at time now: every refresh token of a
 * device whose newest token has expired (rotated ones are kept until then,
 * so reuse detection works for the whole life of the chain), rotated tokens
 * rotated more than STORE_RETENTION ago (a replay of those answers -ENOENT,
 * still refused), revoked jtis and proof jtis expired more than an hour ago
 * (the largest ClockSkew), devices revoked or
 * without tokens for longer than STORE_RETENTION, audit rows older than
 * STORE_RETENTION, published keys retired more than an hour ago, revocation
 * log entries whose until passed more than an hour ago. Returns the number
 * of rows deleted (≥ 0) or -errno. */
int store_prune(tokend_store *s, int64_t now);

/* A public key an issuer published (for the union JWKS of several issuers
 * sharing the store). */
typedef struct store_published_key {
        char kid[STORE_KID_MAX + 1];
        char jwk[STORE_JWK_MAX + 1]; /* JSON text of the public JWK */
        int64_t published;           /* first published */
        int64_t retire_after;        /* no longer listed from then on */
} store_published_key;

/* Publish (or keep publishing) the public JWK jwk (JSON text, never a
 * private key: the caller's duty) under kid until retire_after (> now).
 * A kid already published keeps its first publication time and gets the
 * new jwk and retire_after. 0 or -EINVAL. */
int store_key_publish(tokend_store *s, const char *kid, const char *jwk, int64_t now, int64_t retire_after);

/* The keys published and not yet retired at now, in kid order, at most
 * STORE_KEYS_MAX: *ret a malloc'ed array of *ret_n (NULL when 0), owned by
 * the caller. 0 or -errno. */
int store_keys_list(tokend_store *s, int64_t now, store_published_key **ret, size_t *ret_n);
