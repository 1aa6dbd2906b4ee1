/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json-util.h"
#include "tokenctl-state.h"

#define STATE_JSON_DEPTH 8U

void tc_creds_done(tc_creds *c) {
        if (!c)
                return;
        free(c->user);
        free(c->device_id);
        free(c->device_name);
        erase_and_free(c->refresh_token);
        erase_and_free(c->device_key_pem);
        *c = (tc_creds){ 0 };
}

/* mkdir -p with mode 0700 for every component we create. */
static int mkdir_p(char *path) {
        for (char *p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                int r = mkdir(path, 0700) < 0 && errno != EEXIST ? -errno : 0;
                *p = '/';
                if (r < 0)
                        return r;
        }
        return mkdir(path, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

int tc_xdg_dir(const char *env, const char *fallback, char **ret) {
        const char *x = getenv(env), *home = getenv("HOME");
        char *s;

        /* XDG base directory spec: relative paths are invalid, ignore them. */
        if (x && x[0] == '/')
                s = strdup(x);
        else {
                if (!home || home[0] != '/') {
                        struct passwd *pw = getpwuid(getuid());
                        if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                                return -ENOENT;
                        home = pw->pw_dir;
                }
                s = tc_path_join(home, fallback);
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* BASE/tokend, or BASE/tokend/issuers/ESCAPED-URL with --issuer (the URL
 * percent-escaped: one file name, no '/'): each issuer has its own device
 * and tokens. */
static char *tc_state_subdir(const tc_ctx *ctx, const char *base) {
        char *dir = NULL;
        if (!ctx->issuer)
                return tc_path_join(base, "tokend");
        char *name = curl_easy_escape(NULL, ctx->issuer, 0);
        if (!name || asprintf(&dir, "%s/tokend/issuers/%s", base, name) < 0)
                dir = NULL;
        curl_free(name);
        return dir;
}

int tc_state_dir(const tc_ctx *ctx, bool create, char **ret) {
        _cleanup_(freep) char *base = NULL, *dir = NULL;
        struct stat st;
        int r;

        r = tc_xdg_dir("XDG_STATE_HOME", ".local/state", &base);
        if (r < 0)
                return tc_error(ctx, r, "cannot find the state directory: set XDG_STATE_HOME or HOME");
        if (!(dir = tc_state_subdir(ctx, base)))
                return -ENOMEM;
        if (create && (r = mkdir_p(dir)) < 0)
                return tc_error(ctx, r, "cannot create %s: %s", dir, strerror(-r));
        if (stat(dir, &st) < 0) {
                r = -errno;
                if (r == -ENOENT)
                        return tc_error_as(ctx, r, "not_logged_in", "not logged in (no %s): run tokenctl login", dir);
                return tc_error(ctx, r, "cannot use %s: %s", dir, strerror(-r));
        }
        if (!S_ISDIR(st.st_mode))
                return tc_error(ctx, -ENOTDIR, "%s is not a directory: remove it and run tokenctl login", dir);
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return tc_error(ctx, -EPERM,
                                "refusing to use %s: it is %s; run: chmod 700 %s (and log in again if someone "
                                "else could have changed it)",
                                dir, st.st_uid != geteuid() ? "owned by another user" : "writable by others", dir);
        *ret = TAKE_PTR(dir);
        return 0;
}

int tc_state_dir_if_any(const tc_ctx *ctx, char **ret) {
        _cleanup_(freep) char *base = NULL, *dir = NULL;
        struct stat st;

        if (tc_xdg_dir("XDG_STATE_HOME", ".local/state", &base) < 0 || !(dir = tc_state_subdir(ctx, base)))
                return -ENOENT;
        if (lstat(dir, &st) < 0 && errno == ENOENT)
                return -ENOENT;
        return tc_state_dir(ctx, false, ret);
}

int tc_state_lock(const tc_ctx *ctx, const char *dir) {
        _cleanup_(freep) char *path = tc_path_join(dir, TC_LOCK_FILE);
        if (!path)
                return -ENOMEM;
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return tc_error(ctx, -errno, "cannot open the lock file %s: %m", path);
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return tc_error(ctx, r, "cannot lock %s: %s", path, strerror(-r));
                }
        return fd;
}

/* Read dir/name as a JSON object, refusing files that are not ours or that
 * group/others can access. */
static int read_json(const tc_ctx *ctx, const char *dir, const char *name, json_t **ret) {
        _cleanup_(freep) char *path = tc_path_join(dir, name);
        _cleanup_(closep) int fd = -EBADF;
        struct stat st;
        char *buf;
        size_t n = 0;
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT)
                        return r;
                if (r == -ELOOP)
                        return tc_error(ctx, -EPERM, "refusing to use %s: it is a symbolic link; remove it and "
                                        "run tokenctl login", path);
                return tc_error(ctx, r, "cannot open %s: %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0)
                return tc_error(ctx, -errno, "cannot stat %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return tc_error(ctx, -EPERM, "refusing to use %s: not a regular file", path);
        if (st.st_uid != geteuid())
                return tc_error(ctx, -EPERM, "refusing to use %s: it is owned by uid %u, not by you (uid %u); "
                                "remove it and run tokenctl login", path, (unsigned) st.st_uid,
                                (unsigned) geteuid());
        if (st.st_mode & 077)
                return tc_error(ctx, -EPERM,
                                "refusing to use %s: its mode %04o lets group or others read it; run: chmod 600 %s "
                                "(if others may have copied it: tokenctl logout, then tokenctl login)",
                                path, (unsigned) (st.st_mode & 07777), path);
        if ((uint64_t) st.st_size > TC_STATE_FILE_MAX)
                return tc_error(ctx, -E2BIG, "%s is larger than %u bytes: remove it and run tokenctl login",
                                path, TC_STATE_FILE_MAX);
        buf = malloc(TC_STATE_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, TC_STATE_FILE_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        erase_and_free_buf(buf, TC_STATE_FILE_MAX + 1);
                        return tc_error(ctx, r, "cannot read %s: %s", path, strerror(-r));
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > TC_STATE_FILE_MAX)
                        break;
        }
        r = td_json_parse_object(buf, n, TC_STATE_FILE_MAX, STATE_JSON_DEPTH, ret, NULL);
        erase_and_free_buf(buf, TC_STATE_FILE_MAX + 1);
        if (r < 0)
                return tc_error(ctx, -EBADMSG, "%s is damaged (not a JSON object): remove it and run tokenctl login",
                                path);
        return 0;
}

static int write_all(int fd, const char *s, size_t len) {
        while (len > 0) {
                ssize_t k = write(fd, s, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                s += k;
                len -= (size_t) k;
        }
        return 0;
}

/* Atomic replace: temp file (0600) + fsync + rename + fsync of the dir. */
static int write_json(const tc_ctx *ctx, const char *dir, const char *name, const json_t *j) {
        _cleanup_(freep) char *path = tc_path_join(dir, name), *tmp = NULL;
        _cleanup_(erase_and_freep) char *s = NULL;
        int r;

        if (!path || asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        if (td_json_dump_compact(j, &s) < 0)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return tc_error(ctx, -errno, "cannot create a file in %s: %m", dir);
        r = fchmod(fd, 0600) < 0 ? -errno : 0;
        if (r >= 0)
                r = write_all(fd, s, strlen(s));
        if (r >= 0)
                r = write_all(fd, "\n", 1);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return tc_error(ctx, r, "cannot write %s: %s", path, strerror(-r));
        }
        _cleanup_(closep) int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

static int dup_member(const json_t *o, const char *key, bool required, char **ret) {
        const char *v = td_json_object_get_str(o, key);
        if (!v) {
                *ret = NULL;
                return required ? -EBADMSG : 0;
        }
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

int tc_creds_load(const tc_ctx *ctx, const char *dir, tc_creds *ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        tc_creds c = { 0 };
        int r;

        r = read_json(ctx, dir, TC_CREDENTIALS_FILE, &j);
        if (r == -ENOENT)
                return tc_error_as(ctx, r, "not_logged_in", "not logged in (no %s/%s): run tokenctl login", dir,
                                   TC_CREDENTIALS_FILE);
        if (r < 0)
                return r;
        if ((r = dup_member(j, "user", true, &c.user)) < 0 || (r = dup_member(j, "device_id", true, &c.device_id)) < 0 ||
            (r = dup_member(j, "refresh_token", true, &c.refresh_token)) < 0 ||
            (r = dup_member(j, "device_name", false, &c.device_name)) < 0 ||
            (r = dup_member(j, "device_key", false, &c.device_key_pem)) < 0 ||
            td_json_object_get_int_range(j, "refresh_expires_at", 0, INT64_MAX / 2, &c.refresh_expires_at) < 0) {
                tc_creds_done(&c);
                if (r == -ENOMEM)
                        return r;
                return tc_error(ctx, -EBADMSG, "%s/%s is damaged (missing members): run tokenctl login", dir,
                                TC_CREDENTIALS_FILE);
        }
        if (td_json_object_get_int_range(j, "uid", 0, UINT32_MAX, &c.uid) < 0)
                c.uid = -1;
        if (td_json_object_get_int_range(j, "created", 0, INT64_MAX / 2, &c.created) < 0)
                c.created = 0;
        *ret = c;
        return 0;
}

int tc_creds_save(const tc_ctx *ctx, const char *dir, const tc_creds *c) {
        _cleanup_(json_decrefp) json_t *j =
                json_pack("{s:i,s:s,s:I,s:s,s:s*,s:s,s:I,s:s*,s:I}", "version", 1, "user", c->user, "uid",
                          (json_int_t) c->uid, "device_id", c->device_id, "device_name", c->device_name,
                          "refresh_token", c->refresh_token, "refresh_expires_at", (json_int_t) c->refresh_expires_at,
                          "device_key", c->device_key_pem, "created", (json_int_t) c->created);
        if (!j)
                return -ENOMEM;
        return write_json(ctx, dir, TC_CREDENTIALS_FILE, j);
}

int tc_tokens_load(const tc_ctx *ctx, const char *dir, json_t **ret) {
        int r = read_json(ctx, dir, TC_TOKENS_FILE, ret);
        if (r == -ENOENT) {
                *ret = json_object();
                return *ret ? 0 : -ENOMEM;
        }
        return r;
}

int tc_tokens_save(const tc_ctx *ctx, const char *dir, const json_t *tokens) {
        return write_json(ctx, dir, TC_TOKENS_FILE, tokens);
}

int tc_state_remove(const tc_ctx *ctx, const char *dir) {
        static const char *const files[] = { TC_TOKENS_FILE, TC_CREDENTIALS_FILE };
        int ret = 0;
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_(freep) char *path = tc_path_join(dir, files[i]);
                if (!path)
                        return -ENOMEM;
                if (unlink(path) < 0 && errno != ENOENT && ret == 0)
                        ret = tc_error(ctx, -errno, "cannot remove %s: %m", path);
        }
        return ret;
}
