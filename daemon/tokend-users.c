/* SPDX-License-Identifier: MIT */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-users.h"

#define NSS_BUF 16384
#define MAX_GROUPS 256

bool user_name_valid(const char *name) {
        size_t l;
        if (!name || (l = strlen(name)) == 0 || l > USER_NAME_MAX || name[0] == '-')
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '.' || *p == '_' || *p == '-' || *p == '@'))
                        return false;
        return true;
}

static int fill(const struct passwd *pw, td_user *ret) {
        if (strlen(pw->pw_name) > USER_NAME_MAX)
                return -EINVAL;
        snprintf(ret->name, sizeof ret->name, "%s", pw->pw_name);
        ret->uid = pw->pw_uid;
        ret->gid = pw->pw_gid;
        return 0;
}

int user_by_name(const char *name, td_user *ret) {
        struct passwd pw, *res = NULL;
        _cleanup_(freep) char *buf = malloc(NSS_BUF);
        if (!user_name_valid(name))
                return -EINVAL;
        if (!buf)
                return -ENOMEM;
        int e = getpwnam_r(name, &pw, buf, NSS_BUF, &res);
        if (e != 0)
                return -EIO;
        if (!res)
                return -ENOENT;
        /* NSS may fold case; the answer must name exactly this user. */
        if (!streq(res->pw_name, name))
                return -ENOENT;
        return fill(res, ret);
}

int user_by_uid(uid_t uid, td_user *ret) {
        struct passwd pw, *res = NULL;
        _cleanup_(freep) char *buf = malloc(NSS_BUF);
        if (!buf)
                return -ENOMEM;
        int e = getpwuid_r(uid, &pw, buf, NSS_BUF, &res);
        if (e != 0)
                return -EIO;
        if (!res)
                return -ENOENT;
        return fill(res, ret);
}

int user_groups(const td_user *u, char ***ret) {
        gid_t gids[MAX_GROUPS];
        int n = MAX_GROUPS;
        _cleanup_(freep) char *buf = malloc(NSS_BUF);
        if (!buf)
                return -ENOMEM;
        if (getgrouplist(u->name, u->gid, gids, &n) < 0)
                n = MAX_GROUPS; /* truncated: list the first MAX_GROUPS */
        char **v = calloc((size_t) n + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        size_t k = 0;
        for (int i = 0; i < n; i++) {
                struct group gr, *res = NULL;
                if (getgrgid_r(gids[i], &gr, buf, NSS_BUF, &res) != 0 || !res)
                        continue;
                if (!(v[k] = strdup(res->gr_name))) {
                        strv_free(v);
                        return -ENOMEM;
                }
                k++;
        }
        *ret = v;
        return 0;
}

bool user_is_admin(uid_t uid, const char *admin_group) {
        td_user u;
        struct group gr, *res = NULL;
        gid_t gids[MAX_GROUPS];
        int n = MAX_GROUPS;

        if (uid == 0)
                return true;
        if (!admin_group || !*admin_group || user_by_uid(uid, &u) < 0)
                return false;
        _cleanup_(freep) char *buf = malloc(NSS_BUF);
        if (!buf || getgrnam_r(admin_group, &gr, buf, NSS_BUF, &res) != 0 || !res)
                return false;
        if (getgrouplist(u.name, u.gid, gids, &n) < 0)
                return false; /* more groups than we look at: fail closed */
        for (int i = 0; i < n; i++)
                if (gids[i] == res->gr_gid)
                        return true;
        return false;
}
