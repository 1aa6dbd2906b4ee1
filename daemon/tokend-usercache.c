/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "tokend-usercache.h"

#define PROBE 4U

typedef struct uslot {
        int64_t fetched; /* monotonic µs; 0 = empty */
        td_user user;
} uslot;

/* What identifies one version of the passwd file. */
typedef struct file_id {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        bool missing;
} file_id;

struct user_cache {
        pthread_mutex_t lock;
        char *passwd;
        const char *base;   /* passwd's file name, in passwd */
        /* The watcher: inotify on passwd's directory (the file is replaced
         * by rename, so its own inode cannot be watched), a thread that
         * flushes on every event of that name; stop_fd ends it. Without
         * inotify (watching is false): one stat per call instead. */
        atomic_bool watching;
        bool running; /* the thread was started */
        int ino_fd, stop_fd;
        pthread_t watcher;
        atomic_uint_fast64_t changes; /* flushes by the watcher */
        file_id seen; /* without the watcher: the version the entries were read from */
        uint8_t hashkey[crypto_shorthash_KEYBYTES];
        uslot slots[USER_CACHE_SLOTS];
};

static int64_t mono_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static file_id file_id_of(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                return (file_id){ .missing = true };
        return (file_id){ .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim,
                          .ctime = st.st_ctim };
}

static bool file_id_equal(const file_id *a, const file_id *b) {
        return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void flush_locked(user_cache *c) {
        memset(c->slots, 0, sizeof c->slots);
}

/* Whether the events in buf (n bytes) may have changed the file. */
static bool events_touch(const user_cache *c, const char *buf, size_t n) {
        for (size_t off = 0; off + sizeof(struct inotify_event) <= n;) {
                const struct inotify_event *e = (const struct inotify_event *) (const void *) (buf + off);
                if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
                        return true; /* events lost, or the directory itself went */
                if (e->len > 0 && strncmp(e->name, c->base, e->len) == 0)
                        return true;
                off += sizeof *e + e->len;
        }
        return false;
}

static void *watch_main(void *data) {
        user_cache *c = data;
        _Alignas(struct inotify_event) char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];

        for (;;) {
                struct pollfd p[2] = { { .fd = c->ino_fd, .events = POLLIN }, { .fd = c->stop_fd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        break;
                bool touched = false;
                ssize_t n;
                while ((n = read(c->ino_fd, buf, sizeof buf)) > 0)
                        touched |= events_touch(c, buf, (size_t) n);
                if (!touched)
                        continue;
                pthread_mutex_lock(&c->lock);
                flush_locked(c);
                atomic_fetch_add(&c->changes, 1);
                pthread_mutex_unlock(&c->lock);
        }
        /* Cannot watch any longer: back to a stat per call. */
        pthread_mutex_lock(&c->lock);
        flush_locked(c);
        c->seen = file_id_of(c->passwd);
        atomic_store(&c->watching, false);
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* Watch passwd's directory; false (and nothing held) if inotify is not
 * available (no inotify instances or watches left). */
static bool watch_start(user_cache *c) {
        char *slash = strrchr(c->passwd, '/');
        _cleanup_(freep) char *dir = slash ? strndup(c->passwd, slash == c->passwd ? 1 : (size_t) (slash - c->passwd))
                                        : strdup(".");
        c->base = slash ? slash + 1 : c->passwd;
        c->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (dir && c->ino_fd >= 0 && c->stop_fd >= 0 &&
            inotify_add_watch(c->ino_fd, dir, IN_ONLYDIR | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE |
                                                      IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                                                      IN_MOVE_SELF) >= 0 &&
            pthread_create(&c->watcher, NULL, watch_main, c) == 0)
                return true;
        if (c->ino_fd >= 0)
                close(c->ino_fd);
        if (c->stop_fd >= 0)
                close(c->stop_fd);
        c->ino_fd = c->stop_fd = -1;
        return false;
}

int user_cache_new(const char *passwd, user_cache **ret) {
        user_cache *c = calloc(1, sizeof *c);
        if (!c || !(c->passwd = strdup(passwd ? passwd : USER_CACHE_PASSWD))) {
                free(c);
                return -ENOMEM;
        }
        pthread_mutex_init(&c->lock, NULL);
        randombytes_buf(c->hashkey, sizeof c->hashkey);
        c->seen = file_id_of(c->passwd);
        c->watching = watch_start(c);
        c->running = c->watching;
        *ret = c;
        return 0;
}

void user_cache_free(user_cache *c) {
        if (!c)
                return;
        if (c->running) {
                (void) eventfd_write(c->stop_fd, 1);
                pthread_join(c->watcher, NULL);
                close(c->ino_fd);
                close(c->stop_fd);
        }
        pthread_mutex_destroy(&c->lock);
        free(c->passwd);
        free(c);
}

static size_t first_slot(const user_cache *c, const char *name) {
        uint8_t h[crypto_shorthash_BYTES];
        uint64_t idx;
        crypto_shorthash(h, (const uint8_t *) name, strlen(name), c->hashkey);
        memcpy(&idx, h, sizeof idx);
        return (size_t) (idx % USER_CACHE_SLOTS);
}

/* A fresh entry of name, copied to *ret. Called with the lock held. */
static bool lookup(user_cache *c, size_t i0, const char *name, int64_t now, td_user *ret) {
        for (unsigned i = 0; i < PROBE; i++) {
                const uslot *s = &c->slots[(i0 + i) % USER_CACHE_SLOTS];
                if (s->fetched != 0 && now - s->fetched < USER_CACHE_LIFETIME_USEC && streq(s->user.name, name)) {
                        *ret = s->user;
                        return true;
                }
        }
        return false;
}

int user_cache_by_name(user_cache *c, const char *name, td_user *ret) {
        file_id now_id = { 0 };
        td_user u;
        int64_t now, fetched;
        uint_fast64_t changes;
        size_t i0;
        int r;

        if (!user_name_valid(name))
                return -EINVAL;
        i0 = first_slot(c, name);
        bool watching = atomic_load(&c->watching);
        if (!watching)
                now_id = file_id_of(c->passwd);
        now = mono_usec();
        pthread_mutex_lock(&c->lock);
        if (!watching && !file_id_equal(&now_id, &c->seen)) {
                flush_locked(c);
                c->seen = now_id;
        }
        changes = atomic_load(&c->changes);
        bool hit = lookup(c, i0, name, now, ret);
        pthread_mutex_unlock(&c->lock);
        if (hit)
                return 0;

        /* Not under the lock: NSS may be slow (LDAP). A change noticed
         * during it (the watcher's count, or the file version from before
         * the look-up) keeps this answer out of the cache. */
        fetched = mono_usec();
        r = user_by_name(name, &u);
        if (r < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        if (changes == atomic_load(&c->changes) &&
            (watching ? atomic_load(&c->watching) : file_id_equal(&now_id, &c->seen))) {
                uslot *victim = NULL;
                for (unsigned i = 0; i < PROBE; i++) {
                        uslot *s = &c->slots[(i0 + i) % USER_CACHE_SLOTS];
                        if (s->fetched == 0 || streq(s->user.name, name)) {
                                victim = s;
                                break;
                        }
                        if (!victim || s->fetched < victim->fetched)
                                victim = s;
                }
                *victim = (uslot){ .fetched = fetched, .user = u };
        }
        pthread_mutex_unlock(&c->lock);
        *ret = u;
        return 0;
}

uint64_t user_cache_changes(user_cache *c) {
        return (uint64_t) atomic_load(&c->changes);
}

bool user_cache_watching(user_cache *c) {
        return atomic_load(&c->watching);
}

size_t user_cache_count(user_cache *c) {
        size_t n = 0;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < USER_CACHE_SLOTS; i++)
                n += c->slots[i].fetched != 0;
        pthread_mutex_unlock(&c->lock);
        return n;
}
