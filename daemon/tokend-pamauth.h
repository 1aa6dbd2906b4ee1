/* SPDX-License-Identifier: MIT */
/* Password check for POST /api/auth/login: pam_authenticate + pam_acct_mgmt
 * on tokend's own PAM service ([Login] PAMService, default "tokend").
 * Blocking (pam_unix hashes for tens of ms): callers run it on a worker
 * thread, never on an HTTP or D-Bus thread. */
#pragma once

/* Returns 0 if user/password are accepted and the account is usable;
 * -EACCES for a refused credential or account (expired, locked);
 * -EIO if PAM itself failed (service missing, module error). The password
 * is not copied beyond the conversation's reply, which PAM frees after
 * wiping; the caller wipes its own copy. */
int pamauth_check(const char *service, const char *user, const char *password);
