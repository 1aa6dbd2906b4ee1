/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tokend-keydir.h"

#define PASSPHRASE_MAX 4096

static int read_small_file(const char *path, size_t max, char **ret) {
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        char *buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        erase_and_free_buf(buf, max + 1);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max) {
                        erase_and_free_buf(buf, max + 1);
                        return -E2BIG;
                }
        }
        buf[n] = 0;
        *ret = buf;
        return 0;
}

int keydir_passphrase(const char *passphrase_file, char **ret) {
        char *p = NULL;
        int r;

        if (passphrase_file && *passphrase_file)
                r = read_small_file(passphrase_file, PASSPHRASE_MAX, &p);
        else {
                const char *cred = getenv("CREDENTIALS_DIRECTORY"), *env;
                r = -ENOENT;
                if (cred) {
                        _cleanup_(freep) char *path = NULL;
                        if (asprintf(&path, "%s/tokend-passphrase", cred) < 0)
                                return -ENOMEM;
                        r = read_small_file(path, PASSPHRASE_MAX, &p);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
                if (r == -ENOENT && (env = getenv("TOKEND_PASSPHRASE"))) {
                        p = strdup(env);
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

static bool has_pem_suffix(const char *name) {
        size_t l = strlen(name);
        return l > 4 && streq(name + l - 4, ".pem") && name[0] != '.';
}

static bool active_matches(const char *active, const char *file, const jose_key *k) {
        size_t l = strlen(active);
        if (streq(active, file) || streq(active, jose_key_kid(k)))
                return true;
        return strncmp(active, file, l) == 0 && streq(file + l, ".pem");
}

int keydir_load(const char *dir, const char *active, const char *passphrase, keydir *ret, char **ret_error) {
        _cleanup_(jose_keyset_freep) jose_keyset *ks = NULL;
        _cleanup_(freep) char *active_file = NULL;
        const jose_key *act = NULL;
        struct timespec newest = { 0, 0 };
        DIR *d;
        int r;

        *ret_error = NULL;
        r = jose_keyset_new(&ks);
        if (r < 0)
                return r;
        d = opendir(dir);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_(jose_key_freep) jose_key *k = NULL;
                _cleanup_(freep) char *path = NULL;
                struct stat st;

                if (!has_pem_suffix(de->d_name))
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                r = jose_key_load_pem_file(path, passphrase, &k);
                if (r < 0) {
                        if (asprintf(ret_error, "%s: %s", path,
                                     r == -EKEYREJECTED ? "wrong or missing passphrase" :
                                     r == -EOPNOTSUPP ? "unsupported key type or size" :
                                     r == -EBADMSG ? "not a PKCS#8 PEM private key" : strerror(-r)) < 0)
                                *ret_error = NULL;
                        break;
                }
                const jose_key *kk = k;
                r = jose_keyset_add(ks, k);
                if (r < 0) {
                        if (asprintf(ret_error, "%s: a key with kid %s is already loaded", path,
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

int keydir_generate(const char *dir, jose_alg alg, const char *passphrase, char **ret_path) {
        _cleanup_(jose_key_freep) jose_key *k = NULL;
        _cleanup_(freep) char *path = NULL;
        int r;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        r = jose_key_generate(alg, &k);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/%lld-%s.pem", dir, (long long) time(NULL), jose_key_kid(k)) < 0)
                return -ENOMEM;
        r = jose_key_write_pem_file(k, path, passphrase);
        if (r < 0)
                return r;
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
