/* SPDX-License-Identifier: MIT */
/* The SQL of the SQLite store: schema migrations and the prepared
 * statements, one place to read the data model. Private to
 * tokend-store.c (static definitions: include it from there only). */
#pragma once

/* ------------------------------------------------------------ schema */

/* Migration i takes user_version i to i + 1. Append only; never edit one
 * that has shipped. */
static const char *const migrations[] = {
        "CREATE TABLE devices ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  user TEXT NOT NULL,"
        "  uid INTEGER NOT NULL,"
        "  name TEXT NOT NULL DEFAULT '',"
        "  created INTEGER NOT NULL,"
        "  last_used INTEGER NOT NULL,"
        "  public_key BLOB CHECK (public_key IS NULL OR length(public_key) = 32),"
        "  revoked INTEGER,"
        "  revoke_reason TEXT);"
        "CREATE INDEX devices_user ON devices(user);"
        "CREATE TABLE refresh_tokens ("
        "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
        "  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  generation INTEGER NOT NULL,"
        "  created INTEGER NOT NULL,"
        "  expires INTEGER NOT NULL," /* 0 = never */
        "  rotated INTEGER,"
        "  replaced_by BLOB) WITHOUT ROWID;"
        "CREATE INDEX refresh_tokens_device ON refresh_tokens(device_id);"
        "CREATE INDEX refresh_tokens_current ON refresh_tokens(expires) WHERE rotated IS NULL;"
        "CREATE INDEX refresh_tokens_rotated ON refresh_tokens(rotated) WHERE rotated IS NOT NULL;"
        "CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires);"
        "CREATE TABLE proof_jtis (jti TEXT PRIMARY KEY NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX proof_jtis_expires ON proof_jtis(expires);"
        "CREATE TABLE audit ("
        "  id INTEGER PRIMARY KEY,"
        "  time INTEGER NOT NULL,"
        "  event TEXT NOT NULL,"
        "  user TEXT,"
        "  device_id TEXT," /* no foreign key: the trail outlives the device */
        "  caller_uid INTEGER,"
        "  caller_pid INTEGER,"
        "  detail TEXT);"
        "CREATE INDEX audit_time ON audit(time);"
        "CREATE INDEX audit_user ON audit(user, id);",
        /* 2: coalesced audit rows (store_audit_coalesce): count events of one
         * key, time = the first, last_time = the latest. */
        "ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
        "ALTER TABLE audit ADD COLUMN last_time INTEGER;"
        "UPDATE audit SET last_time = time;"
        "CREATE INDEX audit_coalesce ON audit(event, caller_uid, time);",
        /* 3: listings page by (created, id), per user or over everyone, and
         * the per-user device cap counts a user's rows: indexes for both
         * (the new per-user one covers what devices_user served). */
        "CREATE INDEX devices_user_created ON devices(user, created, id);"
        "CREATE INDEX devices_created ON devices(created, id);"
        "DROP INDEX devices_user;",
        /* 4: when the device's person last proved a password (step-up
         * audiences); NULL = never (peer login, and devices from before). */
        "ALTER TABLE devices ADD COLUMN password_auth INTEGER;",
        /* 5: public keys published for the union JWKS of issuers sharing
         * the store (store_key_publish). */
        "CREATE TABLE published_keys (kid TEXT PRIMARY KEY NOT NULL, jwk TEXT NOT NULL,"
        "  published INTEGER NOT NULL, retire_after INTEGER NOT NULL) WITHOUT ROWID;",
        /* 6: the revocation log of the feed (tokend-store.h). AUTOINCREMENT:
         * a seq is never handed out twice, not even after the newest entry
         * was pruned. What was revoked before is carried over (devices: for
         * a week, the migration does not know the token lifetime). */
        "CREATE TABLE revocations ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
        "  id TEXT NOT NULL,"
        "  at INTEGER NOT NULL,"
        "  until INTEGER NOT NULL);"
        "CREATE INDEX revocations_until ON revocations(until);"
        "INSERT INTO revocations (kind, id, at, until) SELECT 1, id, revoked, revoked + 604800 FROM devices "
        "  WHERE revoked IS NOT NULL ORDER BY revoked;"
        "INSERT INTO revocations (kind, id, at, until) SELECT 2, jti, expires, expires FROM revoked_tokens "
        "  ORDER BY expires;",
};

/* ------------------------------------------------------------ statements */

typedef enum stmt_id {
        S_BEGIN,
        S_COMMIT,
        S_ROLLBACK,
        S_SAVEPOINT,
        S_RELEASE,
        S_ROLLBACK_TO,
        S_DEVICE_INSERT,
        S_DEVICE_GET,
        S_DEVICES_ALL,
        S_DEVICES_USER,
        S_DEVICE_REVOKE,
        S_DEVICE_TOUCH,
        S_DEVICES_COUNT,
        S_DEVICES_EVICT,
        S_TOKEN_INSERT,
        S_TOKEN_GET,
        S_TOKEN_ROTATE,
        S_AUDIT_INSERT,
        S_AUDIT_FIND,
        S_AUDIT_BUMP,
        S_AUDIT_WINDOW_ROWS,
        S_AUDIT_ALL,
        S_AUDIT_USER,
        S_JTI_REVOKE,
        S_JTI_GET,
        S_DEVICE_JTI_GET,
        S_PROOF_INSERT,
        S_PRUNE_CHAINS,
        S_PRUNE_ROTATED,
        S_PRUNE_JTIS,
        S_PRUNE_PROOFS,
        S_PRUNE_REVOKED_DEVICES,
        S_PRUNE_DEAD_DEVICES,
        S_PRUNE_AUDIT,
        S_PRUNE_KEYS,
        S_KEY_PUBLISH,
        S_KEYS_LIST,
        S_PRUNE_REVOCATIONS,
        S_REVOCATION_INSERT,
        S_REVOCATIONS_AFTER,
        S_REVOCATIONS_HIGH,
        _S_MAX,
} stmt_id;

#define DEVICE_COLUMNS "id, user, uid, name, created, last_used, public_key, revoked, revoke_reason, password_auth"
#define AUDIT_COLUMNS "id, time, event, user, device_id, caller_uid, caller_pid, detail, count, last_time"

static const char *const stmt_sql[_S_MAX] = {
        [S_BEGIN] = "BEGIN IMMEDIATE",
        [S_COMMIT] = "COMMIT",
        [S_ROLLBACK] = "ROLLBACK",
        [S_SAVEPOINT] = "SAVEPOINT op",
        [S_RELEASE] = "RELEASE op",
        [S_ROLLBACK_TO] = "ROLLBACK TO op",
        [S_DEVICE_INSERT] = "INSERT INTO devices (id, user, uid, name, created, last_used, public_key, password_auth) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0))",
        [S_DEVICE_GET] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE id = ?",
        /* Pages: after the cursor (created, id), LIMIT the page size + 1 (is there more?). */
        [S_DEVICES_ALL] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE (created, id) > (?, ?) "
                          "ORDER BY created, id LIMIT ?",
        [S_DEVICES_USER] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE user = ? AND (created, id) > (?, ?) "
                           "ORDER BY created, id LIMIT ?",
        [S_DEVICE_REVOKE] = "UPDATE devices SET revoked = ?, revoke_reason = ? WHERE id = ? AND revoked IS NULL",
        [S_DEVICE_TOUCH] = "UPDATE devices SET last_used = max(last_used, ?) WHERE id = ?",
        [S_DEVICES_COUNT] = "SELECT count(*) FROM devices WHERE user = ?",
        /* A user's dead devices (revoked, or no current refresh token still
         * valid at ?), least recently used first: room for a new one. */
        [S_DEVICES_EVICT] = "DELETE FROM devices WHERE id IN (SELECT id FROM devices AS d WHERE user = ? AND "
                            "(revoked IS NOT NULL OR NOT EXISTS (SELECT 1 FROM refresh_tokens AS t WHERE "
                            "t.device_id = d.id AND t.rotated IS NULL AND (t.expires = 0 OR t.expires > ?))) "
                            "ORDER BY last_used, id LIMIT ?)",
        [S_TOKEN_INSERT] = "INSERT INTO refresh_tokens (hash, device_id, generation, created, expires) "
                           "VALUES (?, ?, ?, ?, ?)",
        [S_TOKEN_GET] = "SELECT device_id, generation, expires, rotated FROM refresh_tokens WHERE hash = ?",
        [S_TOKEN_ROTATE] = "UPDATE refresh_tokens SET rotated = ?, replaced_by = ? WHERE hash = ? AND rotated IS NULL",
        [S_AUDIT_INSERT] = "INSERT INTO audit (time, last_time, event, user, device_id, caller_uid, caller_pid, "
                           "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        /* The row a coalesced event joins: same key, started after ?3. */
        [S_AUDIT_FIND] = "SELECT id FROM audit WHERE event = ? AND caller_uid = ? AND time > ? AND user IS ? "
                         "AND device_id IS ? AND detail IS ? ORDER BY id DESC LIMIT 1",
        [S_AUDIT_BUMP] = "UPDATE audit SET count = count + 1, last_time = max(coalesce(last_time, time), ?) "
                         "WHERE id = ?",
        [S_AUDIT_WINDOW_ROWS] = "SELECT count(*) FROM audit WHERE event = ? AND caller_uid = ? AND time > ?",
        /* Pages, newest first: rows before the cursor id, LIMIT the page size + 1. */
        [S_AUDIT_ALL] = "SELECT " AUDIT_COLUMNS " FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
        [S_AUDIT_USER] = "SELECT " AUDIT_COLUMNS " FROM audit WHERE user = ? AND id < ? ORDER BY id DESC LIMIT ?",
        [S_JTI_REVOKE] = "INSERT INTO revoked_tokens (jti, expires) VALUES (?, ?) "
                         "ON CONFLICT (jti) DO UPDATE SET expires = excluded.expires WHERE excluded.expires > expires",
        [S_JTI_GET] = "SELECT 1 FROM revoked_tokens WHERE jti = ?",
        /* The verify path: the token's device and whether its jti is revoked, one statement. */
        [S_DEVICE_JTI_GET] = "SELECT " DEVICE_COLUMNS ", EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?2) "
                             "FROM devices WHERE id = ?1",
        [S_PROOF_INSERT] = "INSERT INTO proof_jtis (jti, expires) VALUES (?, ?)",
        /* A chain dies with its newest token; until then its rotated tokens
         * stay, so replaying any of them is recognised as reuse. */
        [S_PRUNE_CHAINS] = "DELETE FROM refresh_tokens WHERE device_id IN (SELECT device_id FROM refresh_tokens "
                           "WHERE rotated IS NULL AND expires != 0 AND expires <= ?)",
        [S_PRUNE_ROTATED] = "DELETE FROM refresh_tokens WHERE rotated IS NOT NULL AND rotated < ?",
        [S_PRUNE_JTIS] = "DELETE FROM revoked_tokens WHERE expires < ?",
        [S_PRUNE_PROOFS] = "DELETE FROM proof_jtis WHERE expires < ?",
        [S_PRUNE_REVOKED_DEVICES] = "DELETE FROM devices WHERE revoked IS NOT NULL AND revoked < ?",
        [S_PRUNE_DEAD_DEVICES] = "DELETE FROM devices WHERE last_used < ? AND NOT EXISTS "
                                 "(SELECT 1 FROM refresh_tokens WHERE device_id = devices.id)",
        [S_PRUNE_AUDIT] = "DELETE FROM audit WHERE time < ?",
        [S_PRUNE_KEYS] = "DELETE FROM published_keys WHERE retire_after < ?",
        [S_KEY_PUBLISH] = "INSERT INTO published_keys (kid, jwk, published, retire_after) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (kid) DO UPDATE SET jwk = excluded.jwk, retire_after = excluded.retire_after",
        [S_KEYS_LIST] = "SELECT kid, jwk, published, retire_after FROM published_keys WHERE retire_after > ? "
                        "ORDER BY kid LIMIT ?",
        [S_PRUNE_REVOCATIONS] = "DELETE FROM revocations WHERE until < ?",
        [S_REVOCATION_INSERT] = "INSERT INTO revocations (kind, id, at, until) VALUES (?, ?, ?, ?)",
        /* A page of the feed, LIMIT the page size + 1. */
        [S_REVOCATIONS_AFTER] = "SELECT seq, kind, id, at, until FROM revocations WHERE seq > ? AND until >= ? "
                                "ORDER BY seq LIMIT ?",
        /* The highest seq ever handed out, pruned or not. */
        [S_REVOCATIONS_HIGH] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0)",
};
