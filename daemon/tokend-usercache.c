/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
        file_id seen; /* the version the entries were read from */
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

int user_cache_new(const char *passwd, user_cache **ret) {
        user_cache *c = calloc(1, sizeof *c);
        if (!c || !(c->passwd = strdup(passwd ? passwd : USER_CACHE_PASSWD))) {
                free(c);
                return -ENOMEM;
        }
        pthread_mutex_init(&c->lock, NULL);
        randombytes_buf(c->hashkey, sizeof c->hashkey);
        c->seen = file_id_of(c->passwd);
        *ret = c;
        return 0;
}

void user_cache_free(user_cache *c) {
        if (!c)
                return;
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
        file_id now_id;
        td_user u;
        int64_t now, fetched;
        size_t i0;
        int r;

        if (!user_name_valid(name))
                return -EINVAL;
        i0 = first_slot(c, name);
        now_id = file_id_of(c->passwd);
        now = mono_usec();
        pthread_mutex_lock(&c->lock);
        if (!file_id_equal(&now_id, &c->seen)) {
                memset(c->slots, 0, sizeof c->slots);
                c->seen = now_id;
        }
        bool hit = lookup(c, i0, name, now, ret);
        pthread_mutex_unlock(&c->lock);
        if (hit)
                return 0;

        /* Not under the lock: NSS may be slow (LDAP). The file version is
         * the one from before the look-up, so a change during it flushes
         * this entry again at the next call. */
        fetched = mono_usec();
        r = user_by_name(name, &u);
        if (r < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        if (file_id_equal(&now_id, &c->seen)) {
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

size_t user_cache_count(user_cache *c) {
        size_t n = 0;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < USER_CACHE_SLOTS; i++)
                n += c->slots[i].fetched != 0;
        pthread_mutex_unlock(&c->lock);
        return n;
}
