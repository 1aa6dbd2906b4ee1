/* SPDX-License-Identifier: MIT */
/* The SQL of the PostgreSQL store: schema migrations and the prepared
 * statements. The same data model as tokend-store-sql.h (SQLite); keys and
 * names compare byte-wise (COLLATE "C") so pages come in the same order on
 * both. Private to tokend-store-pg.c (static definitions). */
#pragma once

/* ------------------------------------------------------------ schema */

/* A transaction mark's first 16 hex digits (tx_marks, migration 4): secs,
 * an SQL bigint of unix seconds, as the server writes and prunes them. */
#define PG_MARK_SECONDS(secs) "lpad(to_hex(" secs "), 16, '0')"
#define PG_MARK_NOW PG_MARK_SECONDS("extract(epoch FROM now())::bigint")

/* Migration i takes tokend_schema.version i to i + 1. Append only; never
 * edit one that has shipped. */
static const char *const pg_migrations[] = {
        "CREATE TABLE devices ("
        "  id text COLLATE \"C\" PRIMARY KEY,"
        "  \"user\" text COLLATE \"C\" NOT NULL,"
        "  uid bigint NOT NULL,"
        "  name text NOT NULL DEFAULT '',"
        "  created bigint NOT NULL,"
        "  last_used bigint NOT NULL,"
        "  public_key bytea CHECK (public_key IS NULL OR length(public_key) = 32),"
        "  revoked bigint,"
        "  revoke_reason text,"
        "  password_auth bigint);"
        "CREATE INDEX devices_user_created ON devices(\"user\", created, id);"
        "CREATE INDEX devices_created ON devices(created, id);"
        "CREATE TABLE refresh_tokens ("
        "  hash bytea PRIMARY KEY CHECK (length(hash) = 32),"
        "  device_id text COLLATE \"C\" NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  generation bigint NOT NULL,"
        "  created bigint NOT NULL,"
        "  expires bigint NOT NULL," /* 0 = never */
        "  rotated bigint,"
        "  replaced_by bytea);"
        "CREATE INDEX refresh_tokens_device ON refresh_tokens(device_id);"
        "CREATE INDEX refresh_tokens_current ON refresh_tokens(expires) WHERE rotated IS NULL;"
        "CREATE INDEX refresh_tokens_rotated ON refresh_tokens(rotated) WHERE rotated IS NOT NULL;"
        "CREATE TABLE revoked_tokens (jti text COLLATE \"C\" PRIMARY KEY, expires bigint NOT NULL);"
        "CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires);"
        "CREATE TABLE proof_jtis (jti text COLLATE \"C\" PRIMARY KEY, expires bigint NOT NULL);"
        "CREATE INDEX proof_jtis_expires ON proof_jtis(expires);"
        "CREATE TABLE audit ("
        "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        "  time bigint NOT NULL,"
        "  event text COLLATE \"C\" NOT NULL,"
        "  \"user\" text COLLATE \"C\","
        "  device_id text," /* no foreign key: the trail outlives the device */
        "  caller_uid bigint,"
        "  caller_pid bigint,"
        "  detail text,"
        "  count bigint NOT NULL DEFAULT 1,"
        "  last_time bigint);"
        "CREATE INDEX audit_time ON audit(time);"
        "CREATE INDEX audit_user ON audit(\"user\", id);"
        "CREATE INDEX audit_coalesce ON audit(event, caller_uid, time);",
        /* 2: public keys published for the union JWKS of the issuers. */
        "CREATE TABLE published_keys (kid text COLLATE \"C\" PRIMARY KEY, jwk text NOT NULL,"
        "  published bigint NOT NULL, retire_after bigint NOT NULL);",
        /* 3: the revocation log of the feed (tokend-store.h). seq comes from
         * the one-row counter revocation_seq, updated inside the revoking
         * transaction: its row lock, held to COMMIT, makes seq order commit
         * order (a SEQUENCE would not: two transactions take 10 and 11, 11
         * commits first, a reader reports 11 and 10 is skipped for good).
         * What was revoked before is carried over (devices for a week, as
         * on SQLite). */
        "CREATE TABLE revocation_seq (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL);"
        "CREATE TABLE revocations ("
        "  seq bigint PRIMARY KEY,"
        "  kind smallint NOT NULL CHECK (kind IN (1, 2)),"
        "  id text COLLATE \"C\" NOT NULL,"
        "  at bigint NOT NULL,"
        "  until bigint NOT NULL);"
        "CREATE INDEX revocations_until ON revocations(until);"
        "INSERT INTO revocations (seq, kind, id, at, until) SELECT row_number() OVER (ORDER BY at, kind, id), "
        "  kind, id, at, until FROM (SELECT 1 AS kind, id, revoked AS at, revoked + 604800 AS until FROM devices "
        "  WHERE revoked IS NOT NULL UNION ALL SELECT 2, jti, expires, expires FROM revoked_tokens) AS r;"
        "INSERT INTO revocation_seq (seq) SELECT coalesce(max(seq), 0) FROM revocations;",
        /* 4: every write transaction inserts its own mark (tokend-store-pg-db.c):
         * after a COMMIT whose answer was lost, the mark tells whether it
         * committed. Its transaction id cannot: a server crash forgets the ids
         * handed out since the WAL was last written, and hands them out again,
         * so "committed" may be another transaction's. A mark is
         * PG_MARK_LEN hex digits, the first 16 the server's time: pruned by
         * prefix. */
        "CREATE TABLE tx_marks (id text COLLATE \"C\" PRIMARY KEY);",
};

/* ------------------------------------------------------------ statements */

typedef enum pg_stmt_id {
        P_DEVICE_INSERT,
        P_DEVICE_GET,
        P_DEVICE_LOCK,
        P_DEVICES_ALL,
        P_DEVICES_USER,
        P_DEVICE_REVOKE,
        P_DEVICE_TOUCH,
        P_USER_LOCK,
        P_DEVICES_COUNT,
        P_DEVICES_EVICT,
        P_TOKEN_INSERT,
        P_TOKEN_GET,
        P_TOKEN_ROTATE,
        P_AUDIT_INSERT,
        P_AUDIT_LOCK,
        P_AUDIT_FIND,
        P_AUDIT_BUMP,
        P_AUDIT_WINDOW_ROWS,
        P_AUDIT_ALL,
        P_AUDIT_USER,
        P_JTI_REVOKE,
        P_JTI_GET,
        P_DEVICE_JTI_GET,
        P_PROOF_INSERT,
        P_PRUNE_CHAINS,
        P_PRUNE_ROTATED,
        P_PRUNE_JTIS,
        P_PRUNE_PROOFS,
        P_PRUNE_REVOKED_DEVICES,
        P_PRUNE_DEAD_DEVICES,
        P_PRUNE_AUDIT,
        P_PRUNE_KEYS,
        P_KEY_PUBLISH,
        P_KEYS_LIST,
        P_PRUNE_REVOCATIONS,
        P_PRUNE_MARKS,
        P_MARK_GET,
        P_REVOCATION_INSERT,
        P_REVOCATIONS_AFTER,
        _P_MAX,
} pg_stmt_id;

/* Results come as text; the key as hex (decoded by PQunescapeBytea). */
#define PG_DEVICE_COLUMNS                                                                                   \
        "id, \"user\", uid, name, created, last_used, public_key, revoked, revoke_reason, password_auth"
#define PG_AUDIT_COLUMNS "id, time, event, \"user\", device_id, caller_uid, caller_pid, detail, count, last_time"

static const char *const pg_stmt_sql[_P_MAX] = {
        [P_DEVICE_INSERT] = "INSERT INTO devices (id, \"user\", uid, name, created, last_used, public_key, "
                            "password_auth) VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8::bigint, 0))",
        [P_DEVICE_GET] = "SELECT " PG_DEVICE_COLUMNS " FROM devices WHERE id = $1",
        /* Every write of one device's state (rotation, revocation) takes
         * this row lock first: one lock order, so a refresh and a revoke
         * serialise and never deadlock. */
        [P_DEVICE_LOCK] = "SELECT " PG_DEVICE_COLUMNS " FROM devices WHERE id = $1 FOR UPDATE",
        [P_DEVICES_ALL] = "SELECT " PG_DEVICE_COLUMNS " FROM devices WHERE (created, id) > ($1, $2) "
                          "ORDER BY created, id LIMIT $3",
        [P_DEVICES_USER] = "SELECT " PG_DEVICE_COLUMNS " FROM devices WHERE \"user\" = $1 AND "
                           "(created, id) > ($2, $3) ORDER BY created, id LIMIT $4",
        [P_DEVICE_REVOKE] = "UPDATE devices SET revoked = $1, revoke_reason = $2 WHERE id = $3 AND revoked IS NULL",
        [P_DEVICE_TOUCH] = "UPDATE devices SET last_used = greatest(last_used, $1) WHERE id = $2",
        /* The per-user cap: concurrent enrolments of one user (on any
         * issuer) count and evict one after the other. */
        [P_USER_LOCK] = "SELECT pg_advisory_xact_lock(1, hashtext($1))",
        [P_DEVICES_COUNT] = "SELECT count(*) FROM devices WHERE \"user\" = $1",
        [P_DEVICES_EVICT] = "DELETE FROM devices WHERE id IN (SELECT id FROM devices AS d WHERE \"user\" = $1 AND "
                            "(revoked IS NOT NULL OR NOT EXISTS (SELECT 1 FROM refresh_tokens AS t WHERE "
                            "t.device_id = d.id AND t.rotated IS NULL AND (t.expires = 0 OR t.expires > $2))) "
                            "ORDER BY last_used, id LIMIT $3)",
        [P_TOKEN_INSERT] = "INSERT INTO refresh_tokens (hash, device_id, generation, created, expires) "
                           "VALUES ($1, $2, $3, $4, $5)",
        [P_TOKEN_GET] = "SELECT device_id, generation, expires, rotated FROM refresh_tokens WHERE hash = $1",
        /* The rotation itself: only a current, unexpired token of this
         * device; no row back means reuse, race, expiry or unknown, told
         * apart by P_TOKEN_GET under the device lock. */
        [P_TOKEN_ROTATE] = "UPDATE refresh_tokens SET rotated = $1, replaced_by = $2 WHERE hash = $3 AND "
                           "device_id = $4 AND rotated IS NULL AND (expires = 0 OR expires > $1) RETURNING generation",
        [P_AUDIT_INSERT] = "INSERT INTO audit (time, last_time, event, \"user\", device_id, caller_uid, caller_pid, "
                           "detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [P_AUDIT_LOCK] = "SELECT pg_advisory_xact_lock(2, hashtext($1::text || ':' || $2::text))",
        [P_AUDIT_FIND] = "SELECT id FROM audit WHERE event = $1 AND caller_uid = $2 AND time > $3 AND "
                         "\"user\" IS NOT DISTINCT FROM $4 AND device_id IS NOT DISTINCT FROM $5 AND "
                         "detail IS NOT DISTINCT FROM $6 ORDER BY id DESC LIMIT 1",
        [P_AUDIT_BUMP] = "UPDATE audit SET count = count + 1, last_time = greatest(coalesce(last_time, time), $1) "
                         "WHERE id = $2",
        [P_AUDIT_WINDOW_ROWS] = "SELECT count(*) FROM audit WHERE event = $1 AND caller_uid = $2 AND time > $3",
        [P_AUDIT_ALL] = "SELECT " PG_AUDIT_COLUMNS " FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        [P_AUDIT_USER] = "SELECT " PG_AUDIT_COLUMNS " FROM audit WHERE \"user\" = $1 AND id < $2 "
                         "ORDER BY id DESC LIMIT $3",
        /* No row changed when it was revoked until as late already (no log entry then). */
        [P_JTI_REVOKE] = "INSERT INTO revoked_tokens (jti, expires) VALUES ($1, $2) ON CONFLICT (jti) DO UPDATE "
                         "SET expires = excluded.expires WHERE revoked_tokens.expires < excluded.expires",
        [P_JTI_GET] = "SELECT 1 FROM revoked_tokens WHERE jti = $1",
        /* The verify path: the token's device and whether its jti is revoked, one round trip. */
        [P_DEVICE_JTI_GET] = "SELECT " PG_DEVICE_COLUMNS ", EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) "
                             "FROM devices WHERE id = $1",
        [P_PROOF_INSERT] = "INSERT INTO proof_jtis (jti, expires) VALUES ($1, $2)",
        [P_PRUNE_CHAINS] = "DELETE FROM refresh_tokens WHERE device_id IN (SELECT device_id FROM refresh_tokens "
                           "WHERE rotated IS NULL AND expires != 0 AND expires <= $1)",
        [P_PRUNE_ROTATED] = "DELETE FROM refresh_tokens WHERE rotated IS NOT NULL AND rotated < $1",
        [P_PRUNE_JTIS] = "DELETE FROM revoked_tokens WHERE expires < $1",
        [P_PRUNE_PROOFS] = "DELETE FROM proof_jtis WHERE expires < $1",
        [P_PRUNE_REVOKED_DEVICES] = "DELETE FROM devices WHERE revoked IS NOT NULL AND revoked < $1",
        [P_PRUNE_DEAD_DEVICES] = "DELETE FROM devices WHERE last_used < $1 AND NOT EXISTS "
                                 "(SELECT 1 FROM refresh_tokens WHERE device_id = devices.id)",
        [P_PRUNE_AUDIT] = "DELETE FROM audit WHERE time < $1",
        [P_PRUNE_KEYS] = "DELETE FROM published_keys WHERE retire_after < $1",
        [P_KEY_PUBLISH] = "INSERT INTO published_keys (kid, jwk, published, retire_after) VALUES ($1, $2, $3, $4) "
                          "ON CONFLICT (kid) DO UPDATE SET jwk = excluded.jwk, retire_after = excluded.retire_after",
        [P_KEYS_LIST] = "SELECT kid, jwk, published, retire_after FROM published_keys WHERE retire_after > $1 "
                        "ORDER BY kid LIMIT $2",
        [P_PRUNE_REVOCATIONS] = "DELETE FROM revocations WHERE until < $1",
        /* by the server's clock, as the marks are made */
        [P_PRUNE_MARKS] = "DELETE FROM tx_marks WHERE id < "
                          PG_MARK_SECONDS("extract(epoch FROM now())::bigint - $1::bigint"),
        [P_MARK_GET] = "SELECT 1 FROM tx_marks WHERE id = $1",
        /* Takes the counter's row lock until COMMIT (see migration 3). */
        [P_REVOCATION_INSERT] = "WITH s AS (UPDATE revocation_seq SET seq = seq + 1 RETURNING seq) "
                                "INSERT INTO revocations (seq, kind, id, at, until) "
                                "SELECT s.seq, $1, $2, $3, $4 FROM s",
        /* The page and the high mark in one statement, so one snapshot: one
         * row with NULL entry columns when the page is empty. */
        [P_REVOCATIONS_AFTER] = "SELECT r.seq, r.kind, r.id, r.at, r.until, h.seq FROM revocation_seq AS h "
                                "LEFT JOIN LATERAL (SELECT * FROM revocations WHERE seq > $1 AND until >= $2 "
                                "ORDER BY seq LIMIT $3) AS r ON true ORDER BY r.seq",
};
