/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "macro.h"
#include "tokend-conns.h"
#include "tokend-log.h"

/* How many connections one non-root caller has open: one entry per such
 * uid (socket) or client network (TCP: IPv4 /32, IPv6 /64), keyed by
 * td_caller_key(), so never more entries than connections. */
#define PEER_KEY_MAX (TD_REMOTE_MAX + 8)
typedef struct uid_count {
        char key[PEER_KEY_MAX];
        unsigned n;
        struct uid_count *next;
} uid_count;

struct conn_slot {
        conn_table *table;
        int fd;
        td_caller peer;
        uid_count *user;       /* admitted non-root: its uid's entry */
        bool admitted;
        bool armed;            /* on the deadline list */
        int64_t deadline_usec; /* CLOCK_MONOTONIC */
        conn_slot *prev, *next;
};

struct conn_table {
        conn_limits lim;
        unsigned reserved_root; /* in force: at most half of max_connections */
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* on CLOCK_MONOTONIC: the head of the list changed */
        unsigned admitted;      /* connections open, every uid */
        uid_count **buckets;
        size_t n_buckets;       /* a power of two */
        /* Armed slots, soonest deadline first: every deadline is "now +
         * timeout" taken under the lock, so appending keeps the order. */
        conn_slot *head, *tail;
        /* When the sweeper wakes up on its own (the deadline it waits
         * for; INT64_MAX: it waits for a signal), so that an arm wakes it
         * only when it must: deadlines only grow, and a sweeper that wakes
         * early for a slot since disarmed just waits again. Under the lock. */
        int64_t sweeper_wake_usec;
        bool stop, running;
        pthread_t sweeper;
        /* Refusals are logged at most once a second, with a count. */
        int64_t refusal_logged_usec;
        unsigned refusals_unlogged;
};

static uid_count **bucket_of(conn_table *t, const char *key) {
        uint32_t h = UINT32_C(2166136261); /* FNV-1a */
        for (; *key; key++)
                h = (h ^ (uint8_t) *key) * UINT32_C(16777619);
        return &t->buckets[h & (t->n_buckets - 1)];
}

static void list_unlink(conn_table *t, conn_slot *c) {
        if (!c->armed)
                return;
        *(c->prev ? &c->prev->next : &t->head) = c->next;
        *(c->next ? &c->next->prev : &t->tail) = c->prev;
        c->prev = c->next = NULL;
        c->armed = false;
}

static void list_append(conn_table *t, conn_slot *c) {
        list_unlink(t, c);
        c->deadline_usec = td_monotonic_usec() + (int64_t) t->lim.timeout * 1000000;
        c->prev = t->tail;
        *(t->tail ? &t->tail->next : &t->head) = c;
        t->tail = c;
        c->armed = true;
        /* Not a signal per connection: the sweeper wakes in time already
         * unless it sleeps without a deadline (or with a later one). */
        if (c->deadline_usec < t->sweeper_wake_usec)
                pthread_cond_signal(&t->cond);
}

static void *sweep_main(void *data) {
        conn_table *t = data;

        pthread_mutex_lock(&t->lock);
        while (!t->stop) {
                conn_slot *c = t->head;
                if (!c) {
                        t->sweeper_wake_usec = INT64_MAX;
                        pthread_cond_wait(&t->cond, &t->lock);
                        continue;
                }
                if (c->deadline_usec > td_monotonic_usec()) {
                        struct timespec ts = { .tv_sec = c->deadline_usec / 1000000,
                                               .tv_nsec = (c->deadline_usec % 1000000) * 1000 };
                        t->sweeper_wake_usec = c->deadline_usec;
                        (void) pthread_cond_timedwait(&t->cond, &t->lock, &ts);
                        continue;
                }
                list_unlink(t, c);
                /* libmicrohttpd reads end-of-file and closes the connection.
                 * The fd is still this connection's: it is closed only after
                 * conn_release(), which waits for this lock. */
                char who[TD_CALLER_NAME_MAX];
                log_debug("closing a connection of %s: its request (or answer) took longer than "
                          "[Limits] RequestTimeout=%us", td_caller_name(&c->peer, who), t->lim.timeout);
                (void) shutdown(c->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&t->lock);
        return NULL;
}

int conn_table_new(const conn_limits *lim, conn_table **ret) {
        conn_table *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->lim = *lim;
        t->reserved_root = lim->reserved_root < lim->max_connections / 2 ? lim->reserved_root
                                                                          : lim->max_connections / 2;
        for (t->n_buckets = 16; t->n_buckets < lim->max_connections; t->n_buckets *= 2)
                ;
        t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
        t->sweeper_wake_usec = INT64_MAX;
        pthread_mutex_init(&t->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&t->cond, &ca);
        pthread_condattr_destroy(&ca);
        if (!t->buckets) {
                conn_table_free(t);
                return -ENOMEM;
        }
        if (pthread_create(&t->sweeper, NULL, sweep_main, t) != 0) {
                conn_table_free(t);
                return -EAGAIN;
        }
        t->running = true;
        *ret = t;
        return 0;
}

void conn_table_free(conn_table *t) {
        if (!t)
                return;
        if (t->running) {
                pthread_mutex_lock(&t->lock);
                t->stop = true;
                pthread_cond_signal(&t->cond);
                pthread_mutex_unlock(&t->lock);
                pthread_join(t->sweeper, NULL);
        }
        for (size_t i = 0; t->buckets && i < t->n_buckets; i++)
                while (t->buckets[i]) { /* only if a slot was never released */
                        uid_count *u = t->buckets[i];
                        t->buckets[i] = u->next;
                        free(u);
                }
        free(t->buckets);
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

/* A TCP peer: its address, and the network its limits count for. */
static int remote_peer(int fd, td_caller *ret) {
        struct sockaddr_storage sa;
        socklen_t l = sizeof sa;
        td_caller c = { .uid = TD_UID_REMOTE, .gid = (gid_t) -1 };
        char net[INET6_ADDRSTRLEN];

        if (getpeername(fd, (struct sockaddr *) &sa, &l) < 0)
                return -errno;
        if (sa.ss_family == AF_INET6) {
                struct in6_addr a = ((const struct sockaddr_in6 *) &sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(&a)) {
                        if (!inet_ntop(AF_INET, &a.s6_addr[12], c.remote, sizeof c.remote))
                                return -EIO;
                        snprintf(c.remote_net, sizeof c.remote_net, "%s", c.remote);
                } else {
                        if (!inet_ntop(AF_INET6, &a, c.remote, sizeof c.remote))
                                return -EIO;
                        memset(&a.s6_addr[8], 0, 8); /* one host usually owns a /64 */
                        if (!inet_ntop(AF_INET6, &a, net, sizeof net))
                                return -EIO;
                        snprintf(c.remote_net, sizeof c.remote_net, "%s/64", net);
                }
        } else if (sa.ss_family == AF_INET) {
                if (!inet_ntop(AF_INET, &((const struct sockaddr_in *) &sa)->sin_addr, c.remote, sizeof c.remote))
                        return -EIO;
                snprintf(c.remote_net, sizeof c.remote_net, "%s", c.remote);
        } else
                return -EAFNOSUPPORT;
        *ret = c;
        return 0;
}

int conn_peer(int fd, td_caller *ret) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        struct ucred uc;
        socklen_t l = sizeof uc;

        if (getsockname(fd, (struct sockaddr *) &sa, &sl) < 0)
                return -errno;
        if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6)
                return remote_peer(fd, ret);
        if (sa.ss_family != AF_UNIX)
                return -EAFNOSUPPORT;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
                return -errno;
        if (l != sizeof uc)
                return -EIO;
        *ret = (td_caller){ .uid = uc.uid, .gid = uc.gid, .pid = uc.pid };
        return 0;
}

bool conn_slot_peer(const conn_slot *c, td_caller *ret) {
        if (!c || !c->admitted)
                return false;
        *ret = c->peer; /* written before the connection was admitted, never after */
        return true;
}

/* Under t->lock. true: c may have a connection (then counted). */
static bool admit_locked(conn_table *t, conn_slot *c, td_status *st) {
        uid_count *u = NULL;
        char key[PEER_KEY_MAX];

        td_caller_key(&c->peer, key);
        if (c->peer.uid != 0) {
                unsigned others = t->lim.max_connections - t->reserved_root;
                if (t->admitted >= others) {
                        st->code = TD_UNAVAILABLE;
                        snprintf(st->message, sizeof st->message,
                                 "all %u connections open to callers other than root are in use "
                                 "([Limits] MaxConnections=%u, ReservedRootConnections=%u)",
                                 others, t->lim.max_connections, t->reserved_root);
                        return false;
                }
                for (u = *bucket_of(t, key); u && !streq(u->key, key); u = u->next)
                        ;
                if (u && u->n >= t->lim.per_user) {
                        st->code = TD_TOO_MANY_REQUESTS;
                        char who[PEER_KEY_MAX + 16];
                        if (td_caller_is_remote(&c->peer))
                                snprintf(who, sizeof who, "client network %s", c->peer.remote_net);
                        else
                                snprintf(who, sizeof who, "uid %u", (unsigned) c->peer.uid);
                        snprintf(st->message, sizeof st->message,
                                 "%s already has %u connections open ([Limits] MaxConnectionsPerUser=%u)", who, u->n,
                                 t->lim.per_user);
                        return false;
                }
                if (!u) {
                        u = calloc(1, sizeof *u);
                        if (!u) {
                                st->code = TD_UNAVAILABLE;
                                snprintf(st->message, sizeof st->message, "out of memory");
                                return false;
                        }
                        memcpy(u->key, key, sizeof key);
                        u->next = *bucket_of(t, key);
                        *bucket_of(t, key) = u;
                }
                u->n++;
        }
        c->user = u;
        c->admitted = true;
        t->admitted++;
        list_append(t, c);
        return true;
}

static void log_refusal_locked(conn_table *t, const conn_slot *c, const td_status *st) {
        int64_t now = td_monotonic_usec();
        if (t->refusal_logged_usec && now - t->refusal_logged_usec < 1000000) {
                t->refusals_unlogged++;
                return;
        }
        char who[TD_CALLER_NAME_MAX];
        td_caller_name(&c->peer, who);
        if (t->refusals_unlogged)
                log_info("refused a connection from %s: %s (%u more refused, not logged, since "
                         "the previous such line)", who, st->message, t->refusals_unlogged);
        else
                log_info("refused a connection from %s: %s", who, st->message);
        t->refusal_logged_usec = now;
        t->refusals_unlogged = 0;
}

bool conn_admit(conn_table *t, int fd, conn_slot **ret, td_status *st) {
        conn_slot *c = calloc(1, sizeof *c);
        bool ok;

        *ret = c;
        *st = (td_status){ .code = TD_UNAVAILABLE, .retry_after = 1 };
        if (!c) {
                snprintf(st->message, sizeof st->message, "out of memory");
                return false;
        }
        c->table = t;
        c->fd = fd;
        if (conn_peer(fd, &c->peer) < 0) {
                log_error("cannot read the peer credentials of a connection, refusing it");
                snprintf(st->message, sizeof st->message, "cannot tell who is calling");
                return false;
        }
        pthread_mutex_lock(&t->lock);
        ok = admit_locked(t, c, st);
        if (!ok)
                log_refusal_locked(t, c, st);
        pthread_mutex_unlock(&t->lock);
        return ok;
}

void conn_release(conn_slot *c) {
        if (!c)
                return;
        conn_table *t = c->table;
        pthread_mutex_lock(&t->lock);
        list_unlink(t, c);
        if (c->admitted)
                t->admitted--;
        if (c->user && --c->user->n == 0) {
                uid_count **p = bucket_of(t, c->user->key);
                while (*p != c->user)
                        p = &(*p)->next;
                *p = c->user->next;
                free(c->user);
        }
        pthread_mutex_unlock(&t->lock);
        free(c);
}

void conn_deadline_arm(conn_slot *c) {
        if (!c || !c->admitted)
                return;
        pthread_mutex_lock(&c->table->lock);
        list_append(c->table, c);
        pthread_mutex_unlock(&c->table->lock);
}

void conn_deadline_disarm(conn_slot *c) {
        if (!c)
                return;
        pthread_mutex_lock(&c->table->lock);
        list_unlink(c->table, c);
        pthread_mutex_unlock(&c->table->lock);
}
