/* SPDX-License-Identifier: MIT */
/* The io.tokend.Tokend1 D-Bus front end.
 *
 * Threads: sd-bus and sd-event objects are not thread-safe, so exactly one
 * thread uses them at any time: the caller of bus_server_start() while it
 * sets up, the bus thread (sd_event_loop) while it serves, the caller of
 * bus_server_stop() after joining it. Other threads talk to the bus thread
 * only through the locked queue below plus an eventfd that wakes it:
 * worker threads hand back finished password logins (PAM is slow, it never
 * runs on the bus thread), any thread hands in DeviceRevoked signals. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "tokend-bus-messages.h"
#include "tokend-bus-watch.h"
#include "tokend-bus.h"
#include "tokend-log.h"
#include "tokend-paging.h"
#include "tokend.h"

#define BUS_NAME "io.tokend.Tokend1"
#define BUS_PATH "/io/tokend/Tokend1"
#define BUS_IFACE "io.tokend.Tokend1"
/* Logins one front end may have in the shared worker queue (LOGIN_QUEUE in
 * tokend-main.c is 256), so bus clients cannot crowd out socket logins. */
#define MAX_PENDING_LOGINS 64U
/* DeviceRevoked signals waiting for the bus thread; beyond this they are
 * dropped with a warning rather than growing without bound. */
#define MAX_QUEUED_SIGNALS 4096U
/* A refresh proof names the operation it is for; the bus takes the same
 * proof as the socket (DPoP-style htm/htu), so a client builds one kind. */
#define REFRESH_HTU "/api/auth/refresh"
/* The caller uid on a bus tokend does not trust (no passwd entry, not
 * root, in no group): what every caller there is. */
#define BUS_UID_UNTRUSTED ((uid_t) -1)

typedef enum item_kind {
        ITEM_LOGIN,          /* a password login, queued once the worker is done */
        ITEM_DEVICE_REVOKED, /* a DeviceRevoked signal to emit */
} item_kind;

typedef struct item {
        struct item *next;
        item_kind kind;
        /* ITEM_LOGIN. call is referenced and unreferenced on the bus-owning
         * thread only; the worker reads the strings of req, which point into
         * call's body: that stays alive and unchanged while the reference is
         * held, and is wiped when freed (the call is marked sensitive). */
        sd_bus_message *call;
        bus_server *srv;
        td_caller caller;
        td_login_req req;
        td_code code;
        td_status st;
        td_tokens tokens;
        sd_event_source *timer; /* answer held back until st.not_before_usec */
        /* ITEM_DEVICE_REVOKED */
        char *user, *device_id;
} item;

typedef struct creds_entry {
        char sender[64]; /* unique name (":1.42"); "" = free */
        td_caller caller;
} creds_entry;

struct bus_server {
        tokend *t;
        workers *workers;
        sd_bus *bus;
        bool trusted;             /* the bus daemon is root or tokend's own uid: its caller uids count */
        uid_t bus_daemon_uid;     /* as SO_PEERCRED of the bus socket says; UID_INVALID if unknown */
        sd_event *event;
        bus_watchers *watchers;   /* bus thread only: who gets DeviceRevoked */
        creds_entry creds_cache[64]; /* bus thread only, replaced round-robin */
        item *delayed;            /* bus thread only: failed logins waiting for not_before_usec */
        unsigned creds_next;
        int wake_fd;              /* eventfd: something was queued, or stop */
        pthread_t thread;
        bool thread_running;

        pthread_mutex_t lock;     /* protects the fields below */
        pthread_cond_t login_done;/* signalled whenever pending drops */
        item *head, **tail;       /* FIFO of finished logins and signals */
        size_t n_signals;
        unsigned pending;         /* logins handed to the worker pool */
        bool stopping;
};

/* ---- errors ---------------------------------------------------------- */

const char *bus_error_name(td_code c) {
        switch (c) {
        case TD_INVALID_REQUEST: return "io.tokend.Error.InvalidArgs";
        case TD_INVALID_CREDENTIALS: return "io.tokend.Error.InvalidCredentials";
        case TD_INVALID_TOKEN: return "io.tokend.Error.InvalidToken";
        case TD_TOKEN_EXPIRED: return "io.tokend.Error.TokenExpired";
        case TD_TOKEN_REVOKED: return "io.tokend.Error.TokenRevoked";
        case TD_FORBIDDEN: return "io.tokend.Error.Forbidden";
        case TD_NOT_FOUND: return "io.tokend.Error.NotFound";
        case TD_TOO_MANY_REQUESTS: return "io.tokend.Error.TooManyRequests";
        case TD_UNAVAILABLE: return "io.tokend.Error.Unavailable";
        case TD_OK: /* not an error: reaching here is a bug, fail closed */
        case TD_INTERNAL:
        default: return "io.tokend.Error.Internal";
        }
}

/* Answer m with the error of st, and log why (the message is never a secret). */
static int reply_status(sd_bus_message *m, const td_caller *c, const td_status *st) {
        const char *name = bus_error_name(st->code);
        log_info("D-Bus %s refused for uid=%u pid=%d: %s: %s", sd_bus_message_get_member(m),
                 c ? (unsigned) c->uid : UINT32_MAX, c ? (int) c->pid : 0, name, st->message);
        return sd_bus_reply_method_errorf(m, name, "%s", st->message);
}

static int reply_fail(sd_bus_message *m, const td_caller *c, td_code code, const char *message) {
        td_status st = { .code = code };
        snprintf(st.message, sizeof st.message, "%s", message);
        return reply_status(m, c, &st);
}

/* The caller, from what the bus daemon says about the sender (it read the
 * uid and pid with SO_PEERCRED when the client connected). An effective uid
 * that sd-bus could only fill in from /proc/PID ("augmented") is racy, as
 * the PID may be reused: refuse rather than trust it. The gid is not known
 * on a bus connection and not used by the service. */
static int caller_of(sd_bus_message *m, td_caller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *cr = NULL;
        uid_t uid;
        pid_t pid = 0;
        int r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_AUGMENT, &cr);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_augmented_mask(cr) & SD_BUS_CREDS_EUID)
                return -EPERM;
        r = sd_bus_creds_get_euid(cr, &uid);
        if (r < 0)
                return r;
        (void) sd_bus_creds_get_pid(cr, &pid); /* for the audit log only */
        *ret = (td_caller){ .uid = uid, .gid = (gid_t) -1, .pid = pid };
        return 0;
}

/* Who sent m; on failure m is answered (refused). A connection's credentials are fixed when it connects and a unique name
 * is never reused on a bus, so they are cached by sender: this saves the
 * round trip to the bus daemon for every call of a busy client. */
static int identify(bus_server *b, sd_bus_message *m, td_caller *ret) {
        const char *sender = sd_bus_message_get_sender(m);
        size_t len = sender ? strlen(sender) : 0;
        bool cacheable = len > 0 && len < sizeof b->creds_cache[0].sender;

        for (size_t i = 0; cacheable && i < ELEMENTSOF(b->creds_cache); i++)
                if (streq(b->creds_cache[i].sender, sender)) {
                        *ret = b->creds_cache[i].caller;
                        return 0;
                }
        int r = caller_of(m, ret);
        if (r < 0) {
                log_error("D-Bus %s from %s refused: cannot get the caller's credentials from the bus: %s",
                          sd_bus_message_get_member(m), sender ? sender : "?", strerror(-r));
                (void) reply_fail(m, NULL, TD_FORBIDDEN, "the bus did not tell who the caller is");
                return r;
        }
        if (cacheable) {
                creds_entry *e = &b->creds_cache[b->creds_next++ % ELEMENTSOF(b->creds_cache)];
                memcpy(e->sender, sender, len + 1);
                e->caller = *ret;
        }
        return 0;
}

/* Parse → identify, the start of every handler: read the arguments of
 * types (pointers into m), then identify the caller. Returns 1 to go on, 0
 * when m was answered already (refused), -errno for a malformed call
 * (sd-bus answers that). */
static int call_begin(bus_server *b, sd_bus_message *m, td_caller *ret, const char *types, ...) {
        va_list ap;
        int r = 0;

        if (*types) {
                va_start(ap, types);
                r = sd_bus_message_readv(m, types, ap);
                va_end(ap);
        }
        if (r < 0)
                return r;
        if (identify(b, m, ret) < 0)
                return 0;
        if (!b->trusted)
                ret->uid = BUS_UID_UNTRUSTED;
        return 1;
}

/* Calls that act as the caller's own user (IssueToken, ListDevices,
 * ListDevicesPaged, ListAudit, RevokeDevice, Unlock, Subscribe) need a
 * caller uid tokend can believe. Returns 1 to go on, 0 when m was answered
 * (refused). */
static int need_identity(bus_server *b, sd_bus_message *m, const td_caller *c) {
        td_status st = { .code = TD_FORBIDDEN };
        if (b->trusted)
                return 1;
        snprintf(st.message, sizeof st.message, "this bus cannot vouch for who calls: its daemon runs as uid %d, not "
                       "root or tokend's own user; use the system bus or tokend's socket (Login, Refresh, Logout, "
                       "Verify and GetJWKS work here, for nobody's uid)", (int) b->bus_daemon_uid);
        (void) reply_status(m, c, &st);
        return 0;
}

/* ---- answers --------------------------------------------------------- */

/* Answer a token-issuing call. tok is wiped in every case. */
static int reply_tokens(sd_bus_message *m, const td_caller *c, td_code code, const td_status *st, td_tokens *tok) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (code != TD_OK) {
                td_tokens_done(tok);
                return reply_status(m, c, st);
        }
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_sensitive(reply); /* carries the refresh token: wiped when freed */
        if (r >= 0)
                r = bus_append_tokens(reply, tok);
        td_tokens_done(tok);
        if (r < 0) {
                log_error("D-Bus %s: cannot build the answer: %s", sd_bus_message_get_member(m), strerror(-r));
                return reply_fail(m, c, TD_INTERNAL, "internal error while building the answer");
        }
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- the queue to the bus thread -------------------------------------- */

static void wake(bus_server *b) {
        uint64_t one = 1;
        /* EAGAIN: the counter is already non-zero, the thread will wake. */
        (void) !write(b->wake_fd, &one, sizeof one);
}

static void item_free(item *it) {
        if (!it)
                return;
        sd_event_source_disable_unref(it->timer);
        sd_bus_message_unref(it->call); /* bus-owning thread only */
        td_tokens_done(&it->tokens);
        free(it->user);
        free(it->device_id);
        free(it);
}

static void enqueue_locked(bus_server *b, item *it) {
        it->next = NULL;
        *b->tail = it;
        b->tail = &it->next;
}

/* The t->on_device_revoked hook: any thread, possibly under the service's
 * read lock, so it only queues. */
static void on_device_revoked(void *userdata, const char *user, const char *device_id) {
        bus_server *b = userdata;
        item *it = calloc(1, sizeof *it);
        bool dropped = false;

        if (!it || !(it->user = strdup(user)) || !(it->device_id = strdup(device_id))) {
                log_warning("DeviceRevoked for device %s not sent: out of memory", device_id);
                item_free(it);
                return;
        }
        it->kind = ITEM_DEVICE_REVOKED;
        pthread_mutex_lock(&b->lock);
        if (b->n_signals >= MAX_QUEUED_SIGNALS)
                dropped = true;
        else {
                enqueue_locked(b, it);
                b->n_signals++;
        }
        pthread_mutex_unlock(&b->lock);
        if (dropped) {
                log_warning("DeviceRevoked for device %s not sent: %u signals already queued", device_id,
                            MAX_QUEUED_SIGNALS);
                item_free(it);
                return;
        }
        wake(b);
}

/* Worker thread: run PAM, then hand the result back. Touches no sd-bus object. */
static void login_job(void *data) {
        item *it = data;
        bus_server *b = it->srv;

        it->code = td_login(b->t, &it->caller, &it->req, &it->tokens, &it->st);
        pthread_mutex_lock(&b->lock);
        enqueue_locked(b, it);
        b->pending--;
        pthread_cond_broadcast(&b->login_done);
        pthread_mutex_unlock(&b->lock);
        wake(b);
}

static void answer_login(item *it) {
        int r = reply_tokens(it->call, &it->caller, it->code, &it->st, &it->tokens);
        if (r < 0)
                log_warning("D-Bus: cannot send a Login answer, ignoring: %s", strerror(-r));
        item_free(it);
}

static void unlink_delayed(bus_server *b, item *it) {
        for (item **p = &b->delayed; *p; p = &(*p)->next)
                if (*p == it) {
                        *p = it->next;
                        return;
                }
}

/* A failed login's FailureDelay is over (bus thread). */
static int on_login_due(sd_event_source *s, uint64_t usec, void *userdata) {
        item *it = userdata;
        (void) s, (void) usec;
        unlink_delayed(it->srv, it);
        answer_login(it);
        return 0;
}

/* Answer every held-back login now (stopping). */
static void flush_delayed(bus_server *b) {
        while (b->delayed) {
                item *it = b->delayed;
                b->delayed = it->next;
                answer_login(it);
        }
}

/* Bus-owning thread: answer finished logins, emit queued signals. */
static void drain(bus_server *b) {
        pthread_mutex_lock(&b->lock);
        item *list = b->head;
        b->head = NULL;
        b->tail = &b->head;
        b->n_signals = 0;
        bool stopping = b->stopping;
        pthread_mutex_unlock(&b->lock);

        while (list) {
                item *it = list;
                list = it->next;
                int r = 0;
                if (it->kind == ITEM_LOGIN && !stopping && it->st.not_before_usec > td_monotonic_usec() &&
                    sd_event_add_time(b->event, &it->timer, CLOCK_MONOTONIC, (uint64_t) it->st.not_before_usec, 0,
                                      on_login_due, it) >= 0) {
                        /* same rule as the socket: a failed login is answered no sooner */
                        it->next = b->delayed;
                        b->delayed = it;
                        continue;
                }
                if (it->kind == ITEM_LOGIN)
                        r = reply_tokens(it->call, &it->caller, it->code, &it->st, &it->tokens);
                else /* unicast to the owner's and admins' subscribed connections */
                        r = bus_watchers_emit(b->watchers, b->t, it->user, it->device_id);
                if (r < 0)
                        log_warning("D-Bus: cannot send %s, ignoring: %s",
                                    it->kind == ITEM_LOGIN ? "a Login answer" : "DeviceRevoked", strerror(-r));
                item_free(it);
        }
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bus_server *b = userdata;
        uint64_t n;
        (void) s, (void) revents;

        (void) !read(fd, &n, sizeof n);
        drain(b);
        /* Stop once no login is left in the pool: each one queues its result
         * before it stops counting, so one more drain answers the last. The
         * exit makes sd-bus flush and close the connection on this thread. */
        pthread_mutex_lock(&b->lock);
        bool stop = b->stopping && b->pending == 0;
        pthread_mutex_unlock(&b->lock);
        if (!stop)
                return 0;
        drain(b);
        flush_delayed(b);
        return sd_event_exit(b->event, 0);
}

/* ---- methods: parse → identify → (the service validates, authorizes, acts) → reply */

static int method_login(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        const char *user, *password, *device_name;
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "sss", &user, &password, &device_name)) <= 0)
                return r;
        item *it = calloc(1, sizeof *it);
        if (!it)
                return -ENOMEM;
        *it = (item){ .kind = ITEM_LOGIN, .srv = b, .caller = c, .call = sd_bus_message_ref(m),
                      .req = { .username = user, .password = password,
                               .device_name = *device_name ? device_name : NULL } };

        pthread_mutex_lock(&b->lock);
        bool stopping = b->stopping, full = b->pending >= MAX_PENDING_LOGINS;
        if (!stopping && !full)
                b->pending++;
        pthread_mutex_unlock(&b->lock);
        r = stopping ? -ESHUTDOWN : full ? -EAGAIN : workers_submit(b->workers, login_job, it);
        if (r < 0) {
                if (!stopping && !full) {
                        pthread_mutex_lock(&b->lock);
                        b->pending--;
                        pthread_cond_broadcast(&b->login_done);
                        pthread_mutex_unlock(&b->lock);
                }
                item_free(it);
                return reply_fail(m, &c, TD_UNAVAILABLE, r == -ESHUTDOWN ? "tokend is stopping, try again later"
                                                                         : "too many logins in progress, try again");
        }
        return 1; /* answered from drain() when the worker is done */
}

static int method_issue_token(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        const char *user, *aud[BUS_MAX_AUDIENCES + 1];
        td_issue_req ir = { 0 };
        td_tokens tok = { 0 };
        td_status st = { 0 };
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "s", &user)) <= 0 || (r = need_identity(b, m, &c)) <= 0)
                return r;
        r = bus_read_audience(m, aud, &ir.audience);
        if (r == -E2BIG) {
                st = (td_status){ .code = TD_INVALID_REQUEST };
                snprintf(st.message, sizeof st.message, "at most %u audiences", BUS_MAX_AUDIENCES);
                return reply_status(m, &c, &st);
        }
        if (r < 0)
                return r;
        ir.user = *user ? user : NULL;
        td_code code = td_issue(b->t, &c, &ir, &tok, &st);
        return reply_tokens(m, &c, code, &st, &tok);
}

static int method_refresh(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        td_refresh_req fr = { .htu = REFRESH_HTU };
        const char *proof;
        td_tokens tok = { 0 };
        td_status st = { 0 };
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "sss", &fr.refresh_token, &fr.device_id, &proof)) <= 0)
                return r;
        fr.proof = *proof ? proof : NULL;
        td_code code = td_refresh(b->t, &c, &fr, &tok, &st);
        return reply_tokens(m, &c, code, &st, &tok);
}

/* Logout(s access_token) and RevokeDevice(s device_id): a string in, a
 * revocation, nothing out. */
static int do_revocation(sd_bus_message *m, bus_server *b, bool by_token) {
        const char *arg;
        td_status st = { 0 };
        td_caller c;
        int r = call_begin(b, m, &c, "s", &arg);
        if (r <= 0 || (!by_token && (r = need_identity(b, m, &c)) <= 0))
                return r;
        td_code code = by_token ? td_logout(b->t, &c, arg, &st) : td_device_revoke(b->t, &c, NULL, arg, &st);
        if (code != TD_OK)
                return reply_status(m, &c, &st);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_logout(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) error;
        return do_revocation(m, userdata, true);
}

static int method_revoke_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) error;
        return do_revocation(m, userdata, false);
}

static int method_verify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        bus_server *b = userdata;
        td_verify_req vr = { 0 };
        td_introspection in = { 0 };
        td_status st = { 0 };
        const char *user, *service;
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "sss", &vr.token, &user, &service)) <= 0)
                return r;
        vr.user = *user ? user : NULL;
        vr.service = *service ? service : NULL;
        if (td_verify(b->t, &c, &vr, &in, &st) != TD_OK)
                return reply_status(m, &c, &st);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = bus_append_claims(reply, &in);
        td_introspection_done(&in);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* A listing page as (aa{sv} rows, s next_cursor), or with paged false
 * (the original ListDevices) the rows alone: then the whole list must fit
 * one page of TD_PAGE_MAX, and a longer one is refused, never cut short. */
static int reply_listing(sd_bus_message *m, const td_caller *c, td_code code, const td_status *st, const char *key,
                         const json_t *j, bool paged) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *next = json_string_value(json_object_get(j, "next_cursor"));
        int r;

        if (code != TD_OK)
                return reply_status(m, c, st);
        if (!paged && next) {
                char msg[96];
                snprintf(msg, sizeof msg, "more than %u devices: list them with ListDevicesPaged", TD_PAGE_MAX);
                return reply_fail(m, c, TD_INVALID_REQUEST, msg);
        }
        if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
            (r = bus_append_devices(reply, json_object_get(j, key))) < 0 ||
            (paged && (r = sd_bus_message_append(reply, "s", next ? next : "")) < 0))
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        bus_server *b = userdata;
        td_status st = { 0 };
        const char *user;
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "s", &user)) <= 0 || (r = need_identity(b, m, &c)) <= 0)
                return r;
        td_page_req pg = { .limit = TD_PAGE_MAX };
        td_code code = td_devices_list(b->t, &c, NULL, *user ? user : NULL, &pg, &j, &st);
        return reply_listing(m, &c, code, &st, "devices", j, false);
}

/* ListDevicesPaged(s user, s cursor, u limit) and ListAudit(s user, s
 * cursor, u limit): "" = none, limit 0 = the default page. */
static int do_listing(sd_bus_message *m, bus_server *b, bool audit) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        td_status st = { 0 };
        const char *user, *cursor;
        uint32_t limit;
        td_caller c;
        int r;

        if ((r = call_begin(b, m, &c, "ssu", &user, &cursor, &limit)) <= 0 || (r = need_identity(b, m, &c)) <= 0)
                return r;
        td_page_req pg = { .cursor = *cursor ? cursor : NULL, .limit = limit };
        td_code code = (audit ? td_audit_list : td_devices_list)(b->t, &c, NULL, *user ? user : NULL, &pg, &j, &st);
        return reply_listing(m, &c, code, &st, audit ? "audit" : "devices", j, true);
}

static int method_list_devices_paged(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) error;
        return do_listing(m, userdata, false);
}

static int method_list_audit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) error;
        return do_listing(m, userdata, true);
}

/* Unlock(s user) → a{sv} {user, was_locked, failures}. */
static int method_unlock(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        td_unlock_result ur;
        td_status st = { 0 };
        const char *user;
        td_caller c;
        int r;
        (void) error;

        if ((r = call_begin(b, m, &c, "s", &user)) <= 0 || (r = need_identity(b, m, &c)) <= 0)
                return r;
        if (td_unlock(b->t, &c, user, &ur, &st) != TD_OK)
                return reply_status(m, &c, &st);
        return sd_bus_reply_method_return(m, "a{sv}", 3, "user", "s", user, "was_locked", "b", (int) ur.was_locked,
                                          "failures", "u", (uint32_t) ur.failures);
}

static int method_get_jwks(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(freep) char *s = NULL;
        bus_server *b = userdata;
        td_status st = { 0 };
        td_caller c;
        (void) error;

        int r = call_begin(b, m, &c, "");
        if (r <= 0)
                return r;
        if (td_jwks(b->t, &j, &st) != TD_OK)
                return reply_status(m, &c, &st);
        if ((r = td_json_dump_compact(j, &s)) < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", s);
}

/* DeviceRevoked is sent only to subscribers (tokend-bus-watch.h). */
static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        td_caller c;
        (void) error;

        int r = call_begin(b, m, &c, "");
        if (r <= 0 || (r = need_identity(b, m, &c)) <= 0)
                return r;
        r = bus_watchers_add(b->watchers, m, c.uid);
        if (r == -EUSERS)
                return reply_fail(m, &c, TD_TOO_MANY_REQUESTS, "too many subscriptions: at most "
                                  "16 connections per uid, 1024 in all; close one first");
        if (r < 0)
                return reply_fail(m, &c, TD_INTERNAL, "cannot record the subscription");
        return sd_bus_reply_method_return(m, "");
}

/* ---- properties ------------------------------------------------------ */

static int property_issuer(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        tokend_rdlock(b->t);
        int r = sd_bus_message_append(reply, "s", b->t->config->issuer);
        tokend_unlock(b->t);
        return r;
}

/* The algorithms of the loaded keys (each verifies only with its own), the
 * signing key's first, each once. */
static int property_algorithms(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        bus_server *b = userdata;
        const char *seen[16];
        size_t n = 0;
        int r;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;

        tokend_rdlock(b->t);
        const jose_keyset *ks = b->t->keys.keys;
        size_t nk = jose_keyset_size(ks);
        seen[n++] = jose_alg_to_string(jose_key_alg(b->t->keys.active));
        for (size_t i = 0; i < nk && n < ELEMENTSOF(seen); i++) {
                const char *a = jose_alg_to_string(jose_key_alg(jose_keyset_get(ks, i)));
                bool dup = false;
                for (size_t k = 0; k < n && !dup; k++)
                        dup = streq(seen[k], a);
                if (!dup)
                        seen[n++] = a;
        }
        tokend_unlock(b->t);
        if ((r = sd_bus_message_open_container(reply, 'a', "s")) < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if ((r = sd_bus_message_append(reply, "s", seen[i])) < 0)
                        return r;
        return sd_bus_message_close_container(reply);
}

static int property_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) bus, (void) path, (void) interface, (void) property, (void) userdata, (void) error;
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

/* Calls that carry a credential (password, refresh or access token) are
 * SENSITIVE: sd-bus wipes the call and its reply when it frees them. */
static const sd_bus_vtable tokend_vtable[] = {
        SD_BUS_VTABLE_START(0),
        /* Issuer and Algorithms may change on a reload (SIGHUP); no change signal. */
        SD_BUS_PROPERTY("Issuer", "s", property_issuer, 0, 0),
        SD_BUS_PROPERTY("Algorithms", "as", property_algorithms, 0, 0),
        SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Login", SD_BUS_ARGS("s", user, "s", password, "s", device_name),
                                SD_BUS_RESULT("a{sv}", tokens), method_login,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("IssueToken", SD_BUS_ARGS("s", user, "as", audience),
                                SD_BUS_RESULT("a{sv}", tokens), method_issue_token,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("Refresh", SD_BUS_ARGS("s", refresh_token, "s", device_id, "s", proof),
                                SD_BUS_RESULT("a{sv}", tokens), method_refresh,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("Logout", SD_BUS_ARGS("s", access_token), SD_BUS_NO_RESULT, method_logout,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("Verify", SD_BUS_ARGS("s", token, "s", user, "s", service),
                                SD_BUS_RESULT("a{sv}", claims), method_verify,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_ARGS("s", user), SD_BUS_RESULT("aa{sv}", devices),
                                method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDevicesPaged", SD_BUS_ARGS("s", user, "s", cursor, "u", limit),
                                SD_BUS_RESULT("aa{sv}", devices, "s", next_cursor), method_list_devices_paged,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListAudit", SD_BUS_ARGS("s", user, "s", cursor, "u", limit),
                                SD_BUS_RESULT("aa{sv}", entries, "s", next_cursor), method_list_audit,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeDevice", SD_BUS_ARGS("s", device_id), SD_BUS_NO_RESULT,
                                method_revoke_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("s", user), SD_BUS_RESULT("a{sv}", result), method_unlock,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetJWKS", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", jwks), method_get_jwks,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Subscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_subscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRevoked", SD_BUS_ARGS("s", user, "s", device_id), 0),
        SD_BUS_VTABLE_END,
};

/* ---- life cycle ------------------------------------------------------ */

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) m, (void) userdata, (void) error;
        log_error("lost the D-Bus connection: the D-Bus API is off until tokend restarts; the socket keeps serving");
        return 0;
}

static int bus_connect(const tokend_config *cfg, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        switch (cfg->bus) {
        case TOKEND_BUS_SYSTEM: return sd_bus_open_system(ret);
        case TOKEND_BUS_SESSION: return sd_bus_open_user(ret);
        case TOKEND_BUS_ADDRESS:
                /* libsystemd 252 has no sd_bus_open_with_address(). */
                if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, cfg->bus_address)) < 0 ||
                    (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0)
                        return r;
                *ret = TAKE_PTR(bus);
                return 0;
        case TOKEND_BUS_NONE:
        default: return -EINVAL;
        }
}

static const char *bus_description(const tokend_config *cfg) {
        switch (cfg->bus) {
        case TOKEND_BUS_SYSTEM: return "the system bus";
        case TOKEND_BUS_SESSION: return "the session bus";
        default: return cfg->bus_address;
        }
}

/* Whose word the caller uids are: the bus daemon reads them with
 * SO_PEERCRED, but a daemon a user runs (a session bus, Bus=ADDRESS) can
 * report any uid, 0 included. Trusted: a daemon that is root or tokend's own
 * uid, as SO_PEERCRED of our connection to it says (the kernel's record of
 * who set up the listening socket; the system bus's is root even after it
 * drops to "messagebus"). Not a Unix socket, or unknown: not trusted. */
static bool bus_daemon_trusted(sd_bus *bus, uid_t *ret_uid) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        int fd = sd_bus_get_fd(bus);

        *ret_uid = (uid_t) -1;
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0 || l != sizeof uc)
                return false;
        *ret_uid = uc.uid;
        return uc.uid == 0 || uc.uid == geteuid();
}

static void *bus_thread(void *userdata) {
        bus_server *b = userdata;
        int r = sd_event_loop(b->event);
        if (r < 0)
                log_error("the D-Bus event loop failed: %s; the D-Bus API is off, the socket keeps serving",
                          strerror(-r));
        return NULL;
}

/* Free what start set up; the bus thread is not running. */
static void bus_server_free(bus_server *b) {
        if (!b)
                return;
        drain(b); /* logins answered, last signals out */
        bus_watchers_free(b->watchers);
        if (b->bus) {
                (void) sd_bus_flush(b->bus);
                sd_bus_flush_close_unref(b->bus);
        }
        sd_event_unref(b->event);
        if (b->wake_fd >= 0)
                close(b->wake_fd);
        pthread_cond_destroy(&b->login_done);
        pthread_mutex_destroy(&b->lock);
        free(b);
}

static int bus_setup(bus_server *b) {
        const tokend_config *cfg = b->t->config; /* start-up: no reload can run yet */
        const char *where = bus_description(cfg);
        int r;

        r = bus_connect(cfg, &b->bus);
        if (r < 0) {
                log_error("cannot connect to %s: %s", where, strerror(-r));
                return r;
        }
        (void) sd_bus_set_description(b->bus, "tokend");
        b->trusted = bus_daemon_trusted(b->bus, &b->bus_daemon_uid);
        if (!b->trusted)
                log_warning("D-Bus: the daemon of %s runs as uid %d, not root or tokend's own uid: it could claim "
                            "any caller uid, so every caller there is treated as nobody (no peer login, device "
                            "lists, revocation by id or Subscribe; no root or admin rights)", where,
                            (int) b->bus_daemon_uid);
        r = bus_watchers_new(b->bus, &b->watchers);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, BUS_PATH, BUS_IFACE, tokend_vtable, b);
        if (r >= 0)
                r = sd_bus_match_signal(b->bus, NULL, NULL, "/org/freedesktop/DBus/Local",
                                        "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, b);
        if (r < 0) {
                log_error("cannot publish %s on %s: %s", BUS_PATH, where, strerror(-r));
                return r;
        }
        /* No queueing, no replacement: a second tokend must not take over. */
        r = sd_bus_request_name(b->bus, BUS_NAME, 0);
        if (r < 0) {
                log_error("cannot own the name %s on %s: %s%s", BUS_NAME, where, strerror(-r),
                          r == -EEXIST ? " (another tokend runs?)"
                                       : r == -EACCES ? " (the bus policy lets only the tokend user own it)" : "");
                return r;
        }
        if ((r = sd_event_new(&b->event)) < 0 || (r = sd_bus_attach_event(b->bus, b->event, 0)) < 0 ||
            (r = sd_event_add_io(b->event, NULL, b->wake_fd, EPOLLIN, on_wake, b)) < 0) {
                log_error("cannot set up the D-Bus event loop: %s", strerror(-r));
                return r;
        }
        log_info("D-Bus: serving %s at %s on %s", BUS_NAME, BUS_PATH, where);
        return 0;
}

int bus_server_start(tokend *t, workers *login_workers, bus_server **ret) {
        if (t->config->bus == TOKEND_BUS_NONE) {
                log_info("D-Bus front end disabled ([Bus] Bus=none)");
                *ret = NULL;
                return 0;
        }
        bus_server *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->t = t;
        b->workers = login_workers;
        b->tail = &b->head;
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->login_done, NULL);
        b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int r = b->wake_fd < 0 ? -errno : bus_setup(b);
        if (r >= 0) {
                /* Before the thread starts: it may revoke (Logout, Refresh) at once. */
                t->on_device_revoked_userdata = b;
                t->on_device_revoked = on_device_revoked;
                r = -pthread_create(&b->thread, NULL, bus_thread, b);
                if (r < 0) {
                        log_error("cannot start the D-Bus thread: %s", strerror(-r));
                        t->on_device_revoked = NULL;
                        t->on_device_revoked_userdata = NULL;
                }
        }
        if (r < 0) {
                bus_server_free(b);
                return r;
        }
        b->thread_running = true;
        *ret = b;
        return 0;
}

void bus_server_stop(bus_server *b) {
        if (!b)
                return;
        pthread_mutex_lock(&b->lock);
        b->stopping = true;
        pthread_mutex_unlock(&b->lock);
        wake(b);
        /* The bus thread keeps serving until the logins in the pool are
         * answered, then exits (see on_wake()). */
        if (b->thread_running)
                pthread_join(b->thread, NULL);
        /* This thread owns the connection now. Only if the event loop died
         * early can logins still be out: wait, so none outlives b. */
        pthread_mutex_lock(&b->lock);
        while (b->pending > 0)
                pthread_cond_wait(&b->login_done, &b->lock);
        pthread_mutex_unlock(&b->lock);
        b->t->on_device_revoked = NULL;
        b->t->on_device_revoked_userdata = NULL;
        bus_server_free(b);
        log_info("D-Bus front end stopped");
}
