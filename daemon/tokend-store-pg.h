/* SPDX-License-Identifier: MIT */
/* Inside the PostgreSQL backend: its connection pool, prepared statements
 * and transactions with retries (tokend-store-pg-db.c), used by its
 * operations (tokend-store-pg.c). Private to those two files. */
#pragma once

#include <libpq-fe.h>

#include "tokend-store-backend.h"
#include "tokend-store-pg-sql.h"

typedef struct pgconn {
        PGconn *pq;
        bool prepared[_P_MAX];
} pgconn;

/* A transaction's body: its result; *keep when its writes must be
 * committed although it returns an error (reuse detection). Must start
 * from scratch on each call (it is retried). */
typedef int (*pg_tx_fn)(pgconn *c, void *args, bool *keep);

/* store_ops entry points (tokend-store-backend.h). */
int pg_open(const char *location, store_backend **ret);
void pg_close(store_backend *b);
int pg_schema_version(store_backend *b);
int pg_integrity_check(store_backend *b);

/* PQclear for a cleanup attribute (NULL is fine). */
void pg_clearp(PGresult **res);

/* Run prepared statement id (prepared on first use) with parameters from
 * fmt: 'i' int64_t, 't' const char * (NULL is NULL), 'h' a STORE_HASH_LEN
 * binary, 'k' a STORE_DEVICE_KEY_LEN binary or NULL. 0 and *ret (text
 * results, the caller clears it), or -errno (-EDEADLK: a conflict the
 * transaction is retried for). */
int pg_exec(pgconn *c, pg_stmt_id id, PGresult **ret, const char *fmt, ...);

/* pg_exec without results: rows changed (or returned), or -errno. */
int pg_run(pgconn *c, pg_stmt_id id, const char *fmt, ...);

/* Column col of row: NULL?, as int64_t (NULL → 0), as text into dst
 * (NULL → "", truncated to size). */
bool pg_col_null(const PGresult *res, int row, int col);
int64_t pg_col_i64(const PGresult *res, int row, int col);
void pg_col_text(char *dst, size_t size, const PGresult *res, int row, int col);

/* fn in a transaction of its own on a pooled connection, retried on
 * conflicts and on connections that died before COMMIT: fn's result, or
 * -EBUSY (server unreachable, conflicts not resolved). When the answer to
 * COMMIT is lost, waits (10 s at most) until the server tells whether it
 * committed: fn's result if so, fn again if not, -ETIMEDOUT when it cannot
 * tell.
 * lazy: may be lost in a crash of the server (synchronous_commit off:
 * coalesced refusals). */
int pg_tx_full(store_backend *b, pg_tx_fn fn, void *args, bool lazy);

/* A transaction's mark in tx_marks (migration 4): the server's time as
 * 16 hex digits (PG_MARK_NOW in tokend-store-pg-sql.h), then 16 random hex
 * digits. */
#define PG_MARK_LEN 32
#define PG_MARK_KEEP 120 /* seconds: well past a lost COMMIT's wait (PG_OUTCOME_WAIT_MS) */
int pg_tx(store_backend *b, pg_tx_fn fn, void *args);

/* One read-only statement on a pooled connection, retried once on a new
 * connection when the pooled one had died: 0 and *ret, or -errno. */
int pg_read(store_backend *b, PGresult **ret, pg_stmt_id id, const char *fmt, ...);
