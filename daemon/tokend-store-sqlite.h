/* SPDX-License-Identifier: MIT */
/* Inside the SQLite backend: its connections, prepared statements and group
 * commit (tokend-store-sqlite-db.c), used by its operations
 * (tokend-store-sqlite.c). Private to those two files. */
#pragma once

#include <sqlite3.h>
#include <stdarg.h>

#include "tokend-store-backend.h"
#include "tokend-store-sql.h"

typedef struct conn {
        sqlite3 *db;
        sqlite3_stmt *stmts[_S_MAX];
} conn;

/* A write operation, run inside the batch transaction. Returns its result;
 * sets *keep when its changes must be committed although it returns an
 * error (reuse detection revokes, then reports -EKEYREVOKED). */
typedef int (*write_fn)(conn *c, void *args, bool *keep);

/* store_ops entry points (tokend-store-backend.h). */
int sqlite_open(const char *path, store_backend **ret);
void sqlite_close(store_backend *s);
int sqlite_schema_version(store_backend *s);

/* An SQLite result code as -errno (0 for OK/ROW/DONE). */
int sq_errno(sqlite3 *db, int rc);

/* Reset a statement and clear its bindings (NULL is fine): a cleanup. */
void sq_stmt_reset(sqlite3_stmt **st);

/* Prepare (once per connection) statement id and bind its parameters from
 * fmt: 'i' int64_t, 't' const char * (NULL binds NULL), 'h' a
 * STORE_HASH_LEN blob, 'k' a STORE_DEVICE_KEY_LEN blob or NULL. Strings and
 * blobs are not copied: the statement must be reset (sq_stmt_reset) before
 * they go away. 0 and *ret, or -errno. */
int sq_vquery(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, va_list ap);
int sq_query(conn *c, stmt_id id, sqlite3_stmt **ret, const char *fmt, ...);

/* Step a query to its first row: 1, or -ENOENT when there is none, -errno. */
int sq_step_row(conn *c, sqlite3_stmt *st);

/* Run SQL text without results: 0 or -errno. */
int sq_exec_sql(sqlite3 *db, const char *sql);

/* First column of the first row of a one-off statement, as text into buf:
 * 1, 0 when there is no row, -errno. */
int sq_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t size);

/* A read-only connection of the pool, waiting for one to be free; give it
 * back with sq_reader_release. */
conn *sq_reader_acquire(store_backend *s);
void sq_reader_release(store_backend *s, conn *c);

/* Queue fn(args) for the writer and wait for its result (group commit: one
 * transaction for the batch, a savepoint for each operation). lazy: the
 * operation need not survive a power failure. */
int sq_write_op_full(store_backend *s, write_fn fn, void *args, bool lazy);
int sq_write_op(store_backend *s, write_fn fn, void *args);

/* sq_query() for a statement that returns no rows, run to completion. Returns
 * the number of rows changed or -errno. */
#define sq_run(c, id, ...)                                                              \
        ({                                                                              \
                _cleanup_(sq_stmt_reset) sqlite3_stmt *_st = NULL;                      \
                int _r = sq_query((c), (id), &_st, __VA_ARGS__);                        \
                if (_r >= 0) {                                                          \
                        int _rc = sqlite3_step(_st);                                    \
                        _r = _rc == SQLITE_DONE  ? sqlite3_changes((c)->db)             \
                             : _rc == SQLITE_ROW ? -EIO                                 \
                                                 : sq_errno((c)->db, _rc);              \
                }                                                                       \
                _r;                                                                     \
        })
