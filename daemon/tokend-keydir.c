/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <sodium.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jose-keyset.h"
#include "tokend-keydir.h"

#define PASSPHRASE_MAX 4096

/* A passphrase lives in sodium_malloc() memory: locked (never swapped),
 * excluded from core dumps, wiped by sodium_free(). */
static char *secret_dup(const char *s, size_t len) {
        char *p = sodium_init() < 0 ? NULL : sodium_malloc(len + 1);
        if (!p)
                return NULL;
        memcpy(p, s, len);
        p[len] = 0;
        return p;
}

/* At most max bytes of fd into sodium_malloc() memory, NUL-terminated. */
static int read_small_fd(int fd, size_t max, char **ret) {
        char *buf = sodium_init() < 0 ? NULL : sodium_malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        sodium_free(buf);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max) {
                        sodium_free(buf);
                        return -E2BIG;
                }
        }
        buf[n] = 0;
        *ret = buf;
        return 0;
}

int keydir_read_small_file(const char *path, size_t max, char **ret) {
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_small_fd(fd, max, ret);
}

int keydir_passphrase(const char *passphrase_file, const char *fallback, char **ret) {
        char *p = NULL;
        int r;

        if (passphrase_file && *passphrase_file)
                r = keydir_read_small_file(passphrase_file, PASSPHRASE_MAX, &p);
        else {
                const char *cred = getenv("CREDENTIALS_DIRECTORY");
                r = -ENOENT;
                if (cred) {
                        _cleanup_(freep) char *path = NULL;
                        if (asprintf(&path, "%s/tokend-passphrase", cred) < 0)
                                return -ENOMEM;
                        r = keydir_read_small_file(path, PASSPHRASE_MAX, &p);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
                if (r == -ENOENT && fallback) {
                        size_t l = strlen(fallback);
                        if (l > PASSPHRASE_MAX)
                                return -E2BIG;
                        p = secret_dup(fallback, l);
                        r = p ? 0 : -ENOMEM;
                }
                if (r == -ENOENT) {
                        *ret = NULL;
                        return 0;
                }
        }
        if (r < 0)
                return r;
        size_t l = strlen(p);
        while (l > 0 && (p[l - 1] == '\n' || p[l - 1] == '\r'))
                p[--l] = 0;
        *ret = p;
        return 0;
}

char *keydir_take_env_passphrase(void) {
        char *v = getenv("TOKEND_PASSPHRASE");
        if (!v)
                return NULL;
        size_t l = strlen(v);
        char *p = secret_dup(v, l);
        /* unsetenv() only drops the pointer from environ: the bytes stay in
         * the initial environment block on the stack, which is what
         * /proc/PID/environ shows. Overwrite them first. */
        sodium_memzero(v, l);
        (void) unsetenv("TOKEND_PASSPHRASE");
        return p;
}

void keydir_passphrase_free(char *p) {
        sodium_free(p); /* wipes; accepts NULL */
}

static bool has_pem_suffix(const char *name) {
        size_t l = strlen(name);
        return l > 4 && streq(name + l - 4, ".pem") && name[0] != '.';
}

bool keydir_is_key_name(const char *name) {
        return has_pem_suffix(name);
}

static bool active_matches(const char *active, const char *file, const jose_key *k) {
        size_t l = strlen(active);
        if (streq(active, file) || streq(active, jose_key_kid(k)))
                return true;
        return strncmp(active, file, l) == 0 && streq(file + l, ".pem");
}

/* Why st (the key directory, or a key file when is_key) cannot be trusted:
 * a malloc'ed reason, or NULL (trusted; *ret_why stays NULL too on ENOMEM,
 * then -ENOMEM). */
static int trust_problem(const struct stat *st, uid_t owner, bool is_key, char **ret_why) {
        unsigned mode = (unsigned) (st->st_mode & 07777);
        int k = 0;

        *ret_why = NULL;
        if (st->st_uid != owner && st->st_uid != 0)
                k = asprintf(ret_why, "refusing: owned by uid %u, not by uid %u (tokend's user) or root; chown it",
                             (unsigned) st->st_uid, (unsigned) owner);
        else if (st->st_mode & (S_IWGRP | S_IWOTH))
                k = asprintf(ret_why, "refusing: writable by group or others (mode %04o); chmod go-w it", mode);
        else if (is_key && (st->st_mode & (S_IRGRP | S_IROTH)))
                k = asprintf(ret_why, "refusing a private key readable by group or others (mode %04o); chmod 0600 it",
                             mode);
        else
                return 0;
        if (k < 0) {
                *ret_why = NULL;
                return -ENOMEM;
        }
        return -EPERM;
}

int keydir_read_private_file(const char *path, uid_t owner, size_t max, char **ret, char **ret_why) {
        struct stat st;
        *ret_why = NULL;
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ELOOP) {
                *ret_why = strdup("refusing: a symbolic link (name the real file)");
                return -EPERM;
        }
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                *ret_why = strdup("refusing: not a regular file");
                return -EPERM;
        }
        int r = trust_problem(&st, owner, true, ret_why);
        if (r < 0)
                return r;
        return read_small_fd(fd, max, ret);
}

int keydir_open(const char *dir, uid_t owner, uid_t *ret_owner, char **ret_error) {
        _cleanup_(freep) char *why = NULL;
        struct stat st;
        int fd, r;

        *ret_error = NULL;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                if (r == -ELOOP || r == -ENOTDIR) {
                        if (asprintf(ret_error, "%s: refusing: not a directory, or a symbolic link (name the real "
                                     "directory in [Keys] Directory=)", dir) < 0)
                                *ret_error = NULL;
                        return -ENOTDIR;
                }
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (owner == KEYDIR_OWNER_OF_DIR)
                owner = st.st_uid;
        r = trust_problem(&st, owner, false, &why);
        if (r < 0) {
                close(fd);
                if (why && asprintf(ret_error, "%s: the key directory: %s", dir, why) < 0)
                        *ret_error = NULL;
                return r;
        }
        if (ret_owner)
                *ret_owner = owner;
        return fd;
}

int keydir_load_key(int dfd, const char *name, uid_t owner, const char *passphrase, jose_key **ret,
                    struct stat *ret_st, char **ret_why) {
        _cleanup_(closep) int fd = -EBADF;
        struct stat st;
        int r;

        *ret_why = NULL;
        /* O_NONBLOCK: a FIFO planted here must not block the open. */
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ELOOP)
                return 1; /* a symbolic link: never followed */
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                *ret_why = strdup(strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode))
                return 1;
        r = trust_problem(&st, owner, true, ret_why);
        if (r < 0)
                return r;
        r = jose_key_load_pem_fd(fd, passphrase, ret);
        if (r < 0) {
                *ret_why = strdup(r == -EKEYREJECTED ? "wrong or missing passphrase" :
                                  r == -EOPNOTSUPP ? "unsupported key type or size" :
                                  r == -EBADMSG ? "not a PKCS#8 PEM private key" : strerror(-r));
                return r;
        }
        if (ret_st)
                *ret_st = st;
        return 0;
}

int keydir_load(const char *dir, uid_t owner, const char *active, const char *passphrase, keydir *ret,
                char **ret_error) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(freep) char *active_file = NULL;
        const jose_key *act = NULL;
        struct timespec newest = { 0, 0 };
        DIR *d;
        int fd, r;

        *ret_error = NULL;
        r = jose_keyset_new(&ks);
        if (r < 0)
                return r;
        fd = keydir_open(dir, owner, &owner, ret_error);
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_(jose_key_freep) jose_key *k = NULL;
                _cleanup_(freep) char *why = NULL;
                struct stat st;

                if (!has_pem_suffix(de->d_name))
                        continue;
                r = keydir_load_key(fd, de->d_name, owner, passphrase, &k, &st, &why);
                if (r > 0) {
                        r = 0;
                        continue;
                }
                if (r < 0) {
                        if (asprintf(ret_error, "%s/%s: %s", dir, de->d_name, why ? why : strerror(-r)) < 0)
                                *ret_error = NULL;
                        break;
                }
                const jose_key *kk = k;
                r = jose_keyset_add(ks, k);
                if (r < 0) {
                        if (asprintf(ret_error, "%s/%s: a key with kid %s is already loaded", dir, de->d_name,
                                     jose_key_kid(k)) < 0)
                                *ret_error = NULL;
                        break;
                }
                TAKE_PTR(k);
                bool pick;
                if (active && *active)
                        pick = active_matches(active, de->d_name, kk);
                else
                        pick = !act || st.st_mtim.tv_sec > newest.tv_sec ||
                               (st.st_mtim.tv_sec == newest.tv_sec && st.st_mtim.tv_nsec > newest.tv_nsec) ||
                               (st.st_mtim.tv_sec == newest.tv_sec && st.st_mtim.tv_nsec == newest.tv_nsec &&
                                strcmp(de->d_name, active_file) > 0);
                if (pick) {
                        act = kk;
                        newest = st.st_mtim;
                        free(active_file);
                        active_file = strdup(de->d_name);
                        if (!active_file) {
                                r = -ENOMEM;
                                break;
                        }
                }
                r = 0;
        }
        closedir(d);
        if (r < 0)
                return r;
        if (jose_keyset_size(ks) == 0)
                return -ENOENT;
        if (!act) {
                if (asprintf(ret_error, "%s: no key matches Active=%s", dir, active) < 0)
                        *ret_error = NULL;
                return -ENOKEY;
        }
        *ret = (keydir){ .keys = TAKE_PTR(ks), .active = act, .active_file = TAKE_PTR(active_file) };
        return 0;
}

int keydir_generate(const char *dir, jose_alg alg, const char *passphrase, char **ret_path, char **ret_error) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(freep) char *name = NULL, *path = NULL;
        _cleanup_(closep) int dfd = -EBADF, fd = -EBADF;
        struct stat st;
        int r;

        *ret_error = NULL;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        /* Any owner (tokenctl does not know tokend's user), but never a
         * directory others could plant keys in. */
        dfd = keydir_open(dir, KEYDIR_OWNER_OF_DIR, NULL, ret_error);
        if (dfd < 0)
                return dfd;
        if (fstat(dfd, &st) < 0)
                return -errno;
        r = jose_key_generate(alg, &k);
        if (r < 0)
                return r;
        if (asprintf(&name, "%lld-%s.pem", (long long) time(NULL), jose_key_kid(k)) < 0 ||
            asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        /* root (tokenctl keys rotate under sudo) writes a key the owner of
         * the directory, tokend's user, can read: tokend refuses keys owned
         * by anyone else but root, and cannot open root's 0600 files. */
        r = 0;
        if (st.st_uid != geteuid() && fchown(fd, st.st_uid, st.st_gid) < 0)
                r = -errno;
        if (r >= 0)
                r = jose_key_write_pem_fd(k, fd, passphrase);
        if (r < 0) {
                /* We created it (O_EXCL): do not leave a truncated key behind. */
                (void) unlinkat(dfd, name, 0);
                return r;
        }
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

void keydir_done(keydir *kd) {
        if (!kd)
                return;
        jose_keyset_free(kd->keys);
        free(kd->active_file);
        *kd = (keydir){ 0 };
}
