/* SPDX-License-Identifier: MIT */
/* User database look-ups for the service layer (NSS through getpwnam_r,
 * getgrouplist): who is this user, which groups, is this caller an admin.
 * Names are validated before any look-up. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "strv.h" /* user_groups() returns a strv: strv_free() it */

#define USER_NAME_MAX 256U

typedef struct td_user {
        char name[USER_NAME_MAX + 1];
        uid_t uid;
        gid_t gid;
} td_user;

/* A user name we accept at all: 1..256 bytes of [A-Za-z0-9._@-], not
 * starting with '-'. (Checked before NSS sees it.) */
bool user_name_valid(const char *name);

/* Fill *ret (a copy: nothing to free). Returns 0, -ENOENT (no such user),
 * -EINVAL (invalid name), -ENOMEM, -EIO (NSS failed). */
int user_by_name(const char *name, td_user *ret);
/* The same by uid; -ENOENT for a uid without a passwd entry, -EINVAL for
 * one whose name is longer than USER_NAME_MAX. */
int user_by_uid(uid_t uid, td_user *ret);

/* NULL-terminated, malloc'ed vector of group names of u (primary first;
 * free with strv_free). Returns 0 or -ENOMEM. */
int user_groups(const td_user *u, char ***ret);

/* Is uid root or a member of group admin_group (may be NULL/"")? */
bool user_is_admin(uid_t uid, const char *admin_group);

