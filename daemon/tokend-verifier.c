/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jose-jwk.h"
#include "jose-jws.h"
#include "json-util.h"
#include "strv.h"
#include "tokend-feed.h"
#include "tokend-log.h"
#include "tokend-hostnames.h"
#include "tokend-vcache.h"
#include "tokend-verifier.h"

#define JWKS_MAX_BYTES (1024U * 1024U)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define FEED_SKEW 30 /* seconds of clock difference tolerated on the feed's iat/exp */
#define STATE_FEED "verifier-feed.json"
#define STATE_JWKS "verifier-jwks.json"

const char *const verifier_feed_result_names[_VFEED_MAX] = {
        "applied", "forged", "replayed", "expired", "wrong_issuer", "malformed",
};
const char *const verifier_jwks_result_names[_VJWKS_MAX] = { "success", "unreachable", "refused" };
const char *const verifier_check_result_names[_VCHECK_MAX] = {
        "accepted", "revoked", "stale", "unknown_key", "expired", "unknown_user", "refused",
};

struct verifier {
        /* from the configuration, fixed */
        char *issuer, *base_url, *unix_socket, *ca_file, *cert, *key;
        char **host_names;
        bool accept_unscoped, best_effort;
        int64_t max_staleness;
        char *feed_path, *jwks_path;

        /* The tokens that passed a full check a moment ago (tokend-vcache.h):
         * the same token again skips the signature check; the feed's
         * revocations drop their entries, a new JWKS drops all. */
        vcache *verified;
        /* Held to read keys (verifies, in parallel) and to replace them
         * (take_jwks, which then takes lock too): no signature check runs
         * under lock. Order: keys_lock, then lock. */
        pthread_rwlock_t keys_lock;

        pthread_mutex_t lock; /* everything below */
        pthread_cond_t cond;  /* on CLOCK_MONOTONIC: stop, want_jwks */
        jose_keyset *keys;    /* the issuer's; NULL until the first JWKS; written under keys_lock too */
        json_t *devices;      /* device id → until */
        json_t *jtis;         /* jti → exp */
        verifier_status st;
        bool want_jwks, stop, running;
        int64_t last_jwks_try; /* monotonic seconds */
        pthread_t thread;
};

static int64_t mono_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec;
}

/* ------------------------------------------------------------ state files */

/* Write text to path atomically: a temporary file in the same directory,
 * fsync'ed, renamed over path. 0 or -errno. */
static int write_atomic(const char *path, const char *text) {
        _cleanup_(freep) char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        size_t n = strlen(text), off = 0;
        int r = 0;
        while (off < n) {
                ssize_t w = write(fd, text + off, n - off);
                if (w < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t) w;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

/* A whole small file (≤ max bytes) as a NUL-terminated string. */
static int read_small(const char *path, size_t max, char **ret, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        _cleanup_(freep) char *buf = malloc(max + 1);
        size_t n = 0;
        int r = 0;
        if (!buf)
                r = -ENOMEM;
        while (r == 0) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0)
                        r = -errno;
                else if (k == 0)
                        break;
                else if ((n += (size_t) k) > max)
                        r = -E2BIG;
        }
        close(fd);
        if (r < 0)
                return r;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

/* The feed state as JSON; caller holds the lock. */
static int save_feed_locked(verifier *v) {
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s,s:I,s:I,s:O,s:O,s:{s:I,s:I,s:I,s:I}}", "issuer", v->issuer, "seq", (json_int_t) v->st.seq,
                "last_ok", (json_int_t) v->st.last_ok, "devices", v->devices, "jtis", v->jtis, "counters",
                "feed_applied", (json_int_t) v->st.feed_applied, "feed_refused", (json_int_t) v->st.feed_refused,
                "jwks_refreshes", (json_int_t) v->st.jwks_refreshes, "unreachable", (json_int_t) v->st.unreachable);
        _cleanup_(freep) char *s = NULL;
        if (!j || td_json_dump_compact(j, &s) < 0)
                return -ENOMEM;
        return write_atomic(v->feed_path, s);
}

static void load_feed(verifier *v) {
        _cleanup_(freep) char *text = NULL;
        size_t len;
        json_t *j = NULL;
        const char *err = NULL;
        if (read_small(v->feed_path, FEED_MAX_BYTES * 4, &text, &len) < 0)
                return; /* first start */
        if (td_json_parse_object(text, len, FEED_MAX_BYTES * 4, 8, &j, &err) < 0) {
                log_warning("%s is not valid JSON (%s), starting from SEQ 0", v->feed_path, err ? err : "?");
                return;
        }
        const json_t *d = json_object_get(j, "devices"), *t = json_object_get(j, "jtis");
        const char *iss = json_string_value(json_object_get(j, "issuer"));
        if (!iss || !streq(iss, v->issuer) || !json_is_object(d) || !json_is_object(t) ||
            !json_is_integer(json_object_get(j, "seq"))) {
                log_warning("%s is of another issuer or malformed, starting from SEQ 0", v->feed_path);
                json_decref(j);
                return;
        }
        json_object_update(v->devices, (json_t *) d);
        json_object_update(v->jtis, (json_t *) t);
        v->st.seq = json_integer_value(json_object_get(j, "seq"));
        v->st.last_ok = json_integer_value(json_object_get(j, "last_ok"));
        const json_t *c = json_object_get(j, "counters");
        v->st.feed_applied = (uint64_t) json_integer_value(json_object_get(c, "feed_applied"));
        v->st.feed_refused = (uint64_t) json_integer_value(json_object_get(c, "feed_refused"));
        v->st.jwks_refreshes = (uint64_t) json_integer_value(json_object_get(c, "jwks_refreshes"));
        json_decref(j);
        log_info("revocation feed state of %s: SEQ %lld, %zu devices and %zu tokens revoked", v->issuer,
                 (long long) v->st.seq, json_object_size(v->devices), json_object_size(v->jtis));
}

/* ------------------------------------------------------------ HTTP */

typedef struct buf {
        char *p;
        size_t n, max;
} buf;

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata) {
        buf *b = userdata;
        size_t n = size * nmemb;
        if (n > b->max - b->n)
                return 0; /* too big: curl fails the transfer */
        char *m = realloc(b->p, b->n + n + 1);
        if (!m)
                return 0;
        memcpy(m + b->n, data, n);
        b->p = m;
        b->n += n;
        b->p[b->n] = 0;
        return n;
}

typedef struct transfer {
        verifier *v;
        bool feed;        /* a long poll: a wanted JWKS fetch ends it */
        bool interrupted; /* ended so */
} transfer;

static int on_progress(void *userdata, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
        transfer *x = userdata;
        (void) a, (void) b, (void) c, (void) d;
        pthread_mutex_lock(&x->v->lock);
        bool stop = x->v->stop;
        x->interrupted = !stop && x->feed && x->v->want_jwks;
        pthread_mutex_unlock(&x->v->lock);
        return stop || x->interrupted ? 1 : 0;
}

/* GET path from the issuer within timeout seconds: 0 and the 200 answer's
 * body (≤ max bytes) in *ret, or -errno (-EIO: unreachable or not 200;
 * -EINTR: a feed request ended early because a JWKS fetch is wanted, an
 * unknown kid must not wait for the long poll). */
static int issuer_get(verifier *v, const char *path, bool feed, long timeout, size_t max, char **ret,
                      size_t *ret_len) {
        _cleanup_(freep) char *url = NULL;
        buf b = { .max = max };
        transfer x = { .v = v, .feed = feed };
        long status = 0;
        CURL *h = curl_easy_init();
        if (!h)
                return -ENOMEM;
        if (asprintf(&url, "%s%s", v->unix_socket ? "http://localhost" : v->base_url, path) < 0) {
                curl_easy_cleanup(h);
                return -ENOMEM;
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
        if (v->unix_socket)
                curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, v->unix_socket);
        if (v->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, v->ca_file);
        if (v->cert) {
                curl_easy_setopt(h, CURLOPT_SSLCERT, v->cert);
                curl_easy_setopt(h, CURLOPT_SSLKEY, v->key);
        }
        CURLcode rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        if (rc != CURLE_OK || status != 200) {
                log_debug("GET %s: %s", url, rc != CURLE_OK ? curl_easy_strerror(rc) : "not 200");
                free(b.p);
                return rc == CURLE_ABORTED_BY_CALLBACK && x.interrupted ? -EINTR : -EIO;
        }
        *ret = b.p ? b.p : strdup("");
        *ret_len = b.n;
        return *ret ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ JWKS */

static void on_skip(void *userdata, size_t index, const char *kid, int error) {
        const char *issuer = userdata;
        log_info("JWKS of %s: key %zu (kid %.64s) left out: %s", issuer, index, kid ? kid : "-", strerror(-error));
}

/* Take a JWKS text as the issuer's keys: fetched just now (cached_at 0:
 * kept on disk, counted) or the copy on disk, fetched at cached_at. */
static int take_jwks(verifier *v, const char *text, size_t len, int64_t cached_at) {
        bool save = cached_at == 0;
        jose_keyset *ks = NULL;
        int r = jose_keyset_from_jwks(text, len, on_skip, v->issuer, &ks);
        if (r < 0 || jose_keyset_size(ks) == 0) {
                log_warning("JWKS of %s refused: %s", v->issuer, r < 0 ? strerror(-r) : "no usable key");
                jose_keyset_free(ks);
                if (save) {
                        pthread_mutex_lock(&v->lock);
                        v->st.jwks_results[VJWKS_REFUSED]++;
                        pthread_mutex_unlock(&v->lock);
                }
                return r < 0 ? r : -ENOKEY;
        }
        if (save && (r = write_atomic(v->jwks_path, text)) < 0)
                log_warning("cannot keep the JWKS in %s, ignoring: %s", v->jwks_path, strerror(-r));
        pthread_rwlock_wrlock(&v->keys_lock);
        pthread_mutex_lock(&v->lock);
        jose_keyset_free(v->keys);
        v->keys = ks;
        v->st.jwks_fetched = save ? time(NULL) : cached_at;
        if (save) {
                v->st.jwks_refreshes++;
                v->st.jwks_results[VJWKS_SUCCESS]++;
        }
        pthread_mutex_unlock(&v->lock);
        pthread_rwlock_unlock(&v->keys_lock);
        vcache_flush(v->verified); /* a key may have been retired */
        log_info("JWKS of %s: %zu key(s)", v->issuer, jose_keyset_size(ks));
        return 0;
}

static int fetch_jwks(verifier *v) {
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        int r = issuer_get(v, "/.well-known/jwks.json", false, 30, JWKS_MAX_BYTES, &text, &len);
        if (r == -EIO) {
                pthread_mutex_lock(&v->lock);
                v->st.jwks_results[VJWKS_UNREACHABLE]++;
                pthread_mutex_unlock(&v->lock);
        }
        return r < 0 ? r : take_jwks(v, text, len, 0);
}

/* ------------------------------------------------------------ the feed */

/* Count a refused answer (by kind), with the reason in the log: logged
 * before the count is saved, so whoever sees the count sees the reason. */
static int feed_refuse(verifier *v, verifier_feed_result kind, const char *why) {
        pthread_mutex_lock(&v->lock);
        uint64_t n = ++v->st.feed_refused;
        v->st.feed_answers[kind]++;
        log_warning("revocation feed answer of %s refused: %s (%llu refused so far)", v->issuer, why,
                    (unsigned long long) n);
        (void) save_feed_locked(v);
        pthread_mutex_unlock(&v->lock);
        return -EBADMSG;
}

/* Entries of one list ("devices": id/until, "jtis": jti/exp) into set. */
static int feed_entries(const json_t *list, const char *id_key, const char *time_key, json_t *set) {
        size_t i;
        const json_t *e;
        if (!json_is_array(list) || json_array_size(list) > FEED_PAGE)
                return -EBADMSG;
        json_array_foreach(list, i, e) {
                const char *id = json_string_value(json_object_get(e, id_key));
                const json_t *until = json_object_get(e, time_key);
                if (!id || !*id || strlen(id) > 128 || !json_is_integer(until))
                        return -EBADMSG;
                const json_t *old = json_object_get(set, id);
                if (!old || json_integer_value(old) < json_integer_value(until))
                        json_object_set_new(set, id, json_integer(json_integer_value(until)));
        }
        return 0;
}

/* Drop the entries that can no longer refuse anything. */
static void forget_expired(json_t *set, int64_t now) {
        const char *k;
        json_t *val, *tmp;
        json_object_foreach_safe(set, tmp, k, val) if (json_integer_value(val) < now - FEED_SKEW)
                json_object_del(set, k);
}

/* Check and apply one answer. 0 (applied), -EBADMSG (refused, counted),
 * -ENOKEY (unknown kid: fetch the JWKS first). *ret_more: ask again at once. */
static int feed_apply(verifier *v, const char *jws, size_t len, int64_t after, bool *ret_more) {
        jws_result res = { 0 };
        int64_t now = time(NULL);
        char why[160];

        pthread_rwlock_rdlock(&v->keys_lock);
        int r = v->keys ? jws_verify(v->keys, jws, len, 0, &res) : -ENOKEY;
        pthread_rwlock_unlock(&v->keys_lock);
        if (r == -ENOKEY)
                return r;
        if (r < 0) {
                snprintf(why, sizeof why, "not signed by an issuer key (%s)", strerror(-r));
                return feed_refuse(v, VFEED_FORGED, why);
        }
        const json_t *p = res.payload;
        const char *typ = json_string_value(json_object_get(res.header, "typ"));
        const char *iss = json_string_value(json_object_get(p, "iss"));
        const json_t *seq = json_object_get(p, "seq"), *aft = json_object_get(p, "after"),
                     *exp = json_object_get(p, "exp"), *iat = json_object_get(p, "iat");
        verifier_feed_result kind = VFEED_MALFORMED;
        const char *bad = NULL;
        if (!typ || !streq(typ, FEED_TYP))
                bad = "wrong typ";
        else if (!iss || !streq(iss, v->issuer))
                kind = VFEED_WRONG_ISSUER, bad = "wrong issuer";
        else if (!json_is_integer(seq) || !json_is_integer(aft))
                bad = "no sequence numbers";
        else if (json_integer_value(aft) != after)
                kind = VFEED_REPLAYED, bad = "an answer to another request (after)";
        else if (json_integer_value(seq) < after)
                kind = VFEED_REPLAYED, bad = "the sequence went backwards";
        else if (!json_is_integer(exp) || json_integer_value(exp) < now - FEED_SKEW)
                kind = VFEED_EXPIRED, bad = "expired";
        else if (!json_is_integer(iat) || json_integer_value(iat) > now + FEED_SKEW)
                kind = VFEED_EXPIRED, bad = "issued in the future";
        if (bad) {
                jws_result_done(&res);
                return feed_refuse(v, kind, bad);
        }
        _cleanup_(json_decrefp) json_t *devices = NULL, *jtis = NULL;
        pthread_mutex_lock(&v->lock);
        devices = json_deep_copy(v->devices);
        jtis = json_deep_copy(v->jtis);
        pthread_mutex_unlock(&v->lock);
        if (!devices || !jtis || feed_entries(json_object_get(p, "devices"), "id", "until", devices) < 0 ||
            feed_entries(json_object_get(p, "jtis"), "jti", "exp", jtis) < 0) {
                jws_result_done(&res);
                return feed_refuse(v, VFEED_MALFORMED, "malformed entries");
        }
        forget_expired(devices, now);
        forget_expired(jtis, now);
        int64_t newseq = json_integer_value(seq);
        *ret_more = json_is_true(json_object_get(p, "more"));

        pthread_mutex_lock(&v->lock);
        json_decref(v->devices);
        json_decref(v->jtis);
        v->devices = TAKE_PTR(devices);
        v->jtis = TAKE_PTR(jtis);
        bool moved = newseq != v->st.seq;
        v->st.seq = newseq;
        v->st.last_ok = now;
        v->st.feed_applied++;
        v->st.feed_answers[VFEED_APPLIED]++;
        r = save_feed_locked(v);
        pthread_mutex_unlock(&v->lock);
        /* Every verify looks its token up in the sets just replaced; the
         * cached entries of what was revoked go too (well-formed: checked
         * by feed_entries above). */
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(p, "devices"), i, e)
                vcache_drop_device(v->verified, json_string_value(json_object_get(e, "id")));
        json_array_foreach(json_object_get(p, "jtis"), i, e)
                vcache_drop_jti(v->verified, json_string_value(json_object_get(e, "jti")));
        jws_result_done(&res);
        if (r < 0)
                log_warning("cannot keep the revocation feed state in %s, ignoring: %s", v->feed_path, strerror(-r));
        if (moved)
                log_info("revocation feed of %s applied up to SEQ %lld", v->issuer, (long long) newseq);
        return 0;
}

/* One long poll. 0 (applied), -EIO (unreachable), -EBADMSG, -ENOKEY. */
static int feed_once(verifier *v, bool *ret_more) {
        _cleanup_(freep) char *text = NULL;
        char path[96];
        size_t len = 0;
        pthread_mutex_lock(&v->lock);
        int64_t after = v->st.seq, now = time(NULL);
        /* Stale (or never synced): ask without waiting. Else wait at most half
         * of MaxStaleness, so that an idle feed still answers in time. */
        int64_t wait = !v->st.last_ok || now - v->st.last_ok >= v->max_staleness / 2 ? 0
                       : v->max_staleness / 2 < FEED_WAIT ? v->max_staleness / 2 : FEED_WAIT;
        pthread_mutex_unlock(&v->lock);
        snprintf(path, sizeof path, "/api/revocations?after=%lld&wait=%lld", (long long) after, (long long) wait);
        int r = issuer_get(v, path, true, (long) wait + 15, FEED_MAX_BYTES, &text, &len);
        if (r < 0)
                return r;
        return feed_apply(v, text, len, after, ret_more);
}

/* Sleep up to ms, or until stopped or a JWKS fetch is wanted. */
static void pause_ms(verifier *v, int64_t ms) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&v->lock);
        while (!v->stop && !v->want_jwks && pthread_cond_timedwait(&v->cond, &v->lock, &ts) == 0)
                ;
        pthread_mutex_unlock(&v->lock);
}

static int64_t jitter(int64_t ms) {
        uint32_t x = 0;
        (void) getrandom(&x, sizeof x, 0);
        return ms / 2 + (int64_t) (x % (uint32_t) ms); /* 50 % .. 150 % */
}

static void *verifier_thread(void *data) {
        verifier *v = data;
        int64_t backoff = BACKOFF_MIN_MS, last_jwks = 0;
        bool fetched_for_feed = false; /* the JWKS was fetched for a feed answer's unknown kid */

        for (;;) {
                pthread_mutex_lock(&v->lock);
                bool stop = v->stop, need = !v->keys || v->want_jwks;
                pthread_mutex_unlock(&v->lock);
                if (stop)
                        break;
                int64_t now = mono_sec();
                if (need || now - last_jwks >= JWKS_REFRESH) {
                        pthread_mutex_lock(&v->lock);
                        v->want_jwks = false;
                        v->last_jwks_try = now;
                        pthread_mutex_unlock(&v->lock);
                        if (fetch_jwks(v) == 0)
                                last_jwks = now;
                        else if (need) { /* no usable key yet: wait before trying again */
                                pause_ms(v, jitter(backoff));
                                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                                continue;
                        }
                }
                bool more = false;
                int r = feed_once(v, &more);
                if (r == -ENOKEY) {
                        /* A new issuer key signed it (a rotation since the last fetch,
                         * however recent): fetch the JWKS once, then ask again; still
                         * unknown after that fetch, it is forged. One fetch per answer. */
                        if (fetched_for_feed) {
                                fetched_for_feed = false;
                                (void) feed_refuse(v, VFEED_FORGED, "signed by a key the issuer's JWKS does not have");
                                pause_ms(v, jitter(JWKS_COOLDOWN * 1000));
                        } else {
                                fetched_for_feed = true;
                                pthread_mutex_lock(&v->lock);
                                v->want_jwks = true;
                                pthread_mutex_unlock(&v->lock);
                        }
                        continue;
                }
                if (r == -EINTR) /* a JWKS fetch is wanted (an unknown kid): at once */
                        continue;
                fetched_for_feed = false;
                if (r == 0) {
                        backoff = BACKOFF_MIN_MS;
                        continue;
                }
                if (r == -EIO) {
                        pthread_mutex_lock(&v->lock);
                        v->st.unreachable++;
                        pthread_mutex_unlock(&v->lock);
                }
                pause_ms(v, jitter(backoff));
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
        return NULL;
}

/* ------------------------------------------------------------ verify */

/* No service asked: any audience; else SERVICE@one of HostNames=, or
 * SERVICE itself with AcceptUnscoped=yes (tokend-hostnames.h). */
static bool audience_ok(const verifier *v, const at_claims *cl, const char *service) {
        return !service || host_audience_accepts(cl->aud, cl->n_aud, service, v->host_names, v->accept_unscoped);
}

int verifier_check(verifier *v, const char *token, size_t len, const char *service, int64_t now, int64_t skew,
                   at_claims *ret) {
        at_claims cl = { 0 };
        at_check chk = { .issuer = v->issuer, .audience = NULL, .now = now, .skew = skew };
        vcache_key key;
        bool cached = false;
        int r;

        pthread_mutex_lock(&v->lock);
        bool stale = !v->st.last_ok || now - v->st.last_ok > v->max_staleness;
        pthread_mutex_unlock(&v->lock);
        /* The signature check, in parallel with the other verifies (only a
         * new JWKS waits for them); skipped for a token that passed it a
         * moment ago with these keys. */
        pthread_rwlock_rdlock(&v->keys_lock);
        if (!v->keys || (stale && !v->best_effort))
                r = -ESTALE;
        else {
                cached = vcache_lookup(v->verified, token, len, now, &key);
                r = cached ? at_reverify(v->keys, token, len, &chk, &cl) : at_verify(v->keys, token, len, &chk, &cl);
        }
        pthread_rwlock_unlock(&v->keys_lock);
        pthread_mutex_lock(&v->lock);
        if (r == -ENOKEY && mono_sec() - v->last_jwks_try >= JWKS_COOLDOWN) {
                v->want_jwks = true; /* the thread fetches it: no network call here */
                pthread_cond_signal(&v->cond);
        }
        /* Cached or not: the feed's revocations, in memory. */
        if (r == 0 && (json_object_get(v->devices, cl.client_id) || json_object_get(v->jtis, cl.jti)))
                r = -EKEYREVOKED;
        if (r == 0 && !audience_ok(v, &cl, service))
                r = -EACCES;
        if (r < 0) /* success is counted by the caller, once it found the user */
                v->st.checks[r == -EKEYREVOKED   ? VCHECK_REVOKED
                             : r == -ENOKEY      ? VCHECK_UNKNOWN_KEY
                             : r == -ESTALE      ? VCHECK_STALE
                             : r == -EKEYEXPIRED ? VCHECK_EXPIRED
                                                 : VCHECK_REFUSED]++;
        pthread_mutex_unlock(&v->lock);
        if (r < 0) {
                at_claims_done(&cl);
                return r;
        }
        if (!cached) /* not if a revocation or a new JWKS came after the look-up */
                vcache_add(v->verified, &key, now, cl.exp, cl.client_id, cl.jti, cl.sub);
        *ret = cl;
        return 0;
}

void verifier_count_check(verifier *v, verifier_check_result r) {
        pthread_mutex_lock(&v->lock);
        v->st.checks[r]++;
        pthread_mutex_unlock(&v->lock);
}

void verifier_get_status(verifier *v, verifier_status *ret) {
        pthread_mutex_lock(&v->lock);
        *ret = v->st;
        ret->revoked_devices = json_object_size(v->devices);
        ret->revoked_jtis = json_object_size(v->jtis);
        ret->jwks_keys = v->keys ? jose_keyset_size(v->keys) : 0;
        pthread_mutex_unlock(&v->lock);
}

/* ------------------------------------------------------------ life */

static int push_dup(char ***l, size_t *n, const char *s, size_t len) {
        char *d = strndup(s, len);
        if (!d || strv_push(l, n, d) < 0) {
                free(d);
                return -ENOMEM;
        }
        return 0;
}

/* The host name and its FQDN (when they differ). */
static int default_host_names(char ***ret) {
        char h[256];
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = 0;
        if (gethostname(h, sizeof h - 1) < 0)
                return -errno;
        h[sizeof h - 1] = 0;
        if (push_dup(&l, &n, h, strlen(h)) < 0)
                return -ENOMEM;
        struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
        if (getaddrinfo(h, NULL, &hints, &ai) == 0) {
                int r = 0;
                if (ai && ai->ai_canonname && !streq(ai->ai_canonname, h))
                        r = push_dup(&l, &n, ai->ai_canonname, strlen(ai->ai_canonname));
                freeaddrinfo(ai);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int split_words(const char *s, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t k = 0;
        for (const char *p = s + strspn(s, " \t"); *p; p += strspn(p, " \t")) {
                size_t n = strcspn(p, " \t");
                if (push_dup(&l, &k, p, n) < 0)
                        return -ENOMEM;
                p += n;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int dup_opt(const char *s, char **ret) {
        *ret = NULL;
        return s && !(*ret = strdup(s)) ? -ENOMEM : 0;
}

int verifier_new(const tokend_config *c, const char *state_dir, verifier **ret) {
        verifier *v = calloc(1, sizeof *v);
        int r;
        if (!v)
                return -ENOMEM;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&v->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&v->lock, NULL);
        pthread_rwlock_init(&v->keys_lock, NULL);
        v->accept_unscoped = c->verifier_accept_unscoped;
        v->best_effort = c->verifier_best_effort;
        v->max_staleness = c->verifier_max_staleness;
        v->st.max_staleness = c->verifier_max_staleness;
        v->devices = json_object();
        v->jtis = json_object();
        if ((r = dup_opt(c->verifier_issuer, &v->issuer)) < 0 || (r = dup_opt(c->verifier_issuer, &v->base_url)) < 0 ||
            (r = dup_opt(c->verifier_unix_socket, &v->unix_socket)) < 0 ||
            (r = dup_opt(c->verifier_ca_file, &v->ca_file)) < 0 ||
            (r = dup_opt(c->verifier_certificate, &v->cert)) < 0 ||
            (r = dup_opt(c->verifier_private_key, &v->key)) < 0 || !v->devices || !v->jtis ||
            vcache_new(&v->verified) < 0 ||
            asprintf(&v->feed_path, "%s/" STATE_FEED, state_dir) < 0 ||
            asprintf(&v->jwks_path, "%s/" STATE_JWKS, state_dir) < 0) {
                verifier_free(v);
                return -ENOMEM;
        }
        size_t bl = strlen(v->base_url);
        if (bl > 0 && v->base_url[bl - 1] == '/')
                v->base_url[bl - 1] = 0;
        r = c->verifier_host_names ? split_words(c->verifier_host_names, &v->host_names)
                                   : default_host_names(&v->host_names);
        if (r < 0) {
                log_error("[Verifier] HostNames=: cannot tell this host's names: %s", strerror(-r));
                verifier_free(v);
                return -EINVAL;
        }
        load_feed(v);
        _cleanup_(freep) char *jwks = NULL;
        size_t len = 0;
        struct stat sb;
        if (read_small(v->jwks_path, JWKS_MAX_BYTES, &jwks, &len) == 0 && stat(v->jwks_path, &sb) == 0)
                /* the cached copy until the issuer answers; its age is the file's */
                (void) take_jwks(v, jwks, len, sb.st_mtime > 0 ? (int64_t) sb.st_mtime : 1);
        if (pthread_create(&v->thread, NULL, verifier_thread, v) != 0) {
                verifier_free(v);
                return -EAGAIN;
        }
        v->running = true;
        log_info("verifier for %s (host name %s%s, Policy=%s, MaxStaleness=%llds)", v->issuer,
                 v->host_names && v->host_names[0] ? v->host_names[0] : "?",
                 v->host_names && v->host_names[0] && v->host_names[1] ? " and more" : "",
                 v->best_effort ? "best_effort" : "strict", (long long) v->max_staleness);
        *ret = v;
        return 0;
}

void verifier_free(verifier *v) {
        if (!v)
                return;
        pthread_mutex_lock(&v->lock);
        v->stop = true;
        pthread_cond_signal(&v->cond);
        pthread_mutex_unlock(&v->lock);
        if (v->running)
                pthread_join(v->thread, NULL);
        jose_keyset_free(v->keys);
        json_decref(v->devices);
        json_decref(v->jtis);
        strv_free(v->host_names);
        free(v->issuer);
        free(v->base_url);
        free(v->unix_socket);
        free(v->ca_file);
        free(v->cert);
        free(v->key);
        free(v->feed_path);
        free(v->jwks_path);
        vcache_free(v->verified);
        pthread_cond_destroy(&v->cond);
        pthread_rwlock_destroy(&v->keys_lock);
        pthread_mutex_destroy(&v->lock);
        free(v);
}
