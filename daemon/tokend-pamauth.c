/* SPDX-License-Identifier: MIT */
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-pamauth.h"

/* Answer every echo-off prompt with the password; anything else gets an
 * empty answer (info/error messages) so modules do not hang. */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
        const char *password = data;
        struct pam_response *r;

        if (n <= 0 || n > PAM_MAX_NUM_MSG)
                return PAM_CONV_ERR;
        r = calloc((size_t) n, sizeof *r);
        if (!r)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++) {
                if (msg[i]->msg_style != PAM_PROMPT_ECHO_OFF)
                        continue;
                r[i].resp = strdup(password);
                if (!r[i].resp) {
                        for (int j = 0; j < i; j++)
                                erase_and_free(r[j].resp);
                        free(r);
                        return PAM_BUF_ERR;
                }
        }
        *resp = r;
        return PAM_SUCCESS;
}

/* Failures are rate limited by tokend itself; a module's fail delay would
 * only tie up a worker thread. */
static void no_delay(int retval, unsigned usec_delay, void *appdata) {
        (void) retval, (void) usec_delay, (void) appdata;
}

int pamauth_check(const char *service, const char *user, const char *password) {
        struct pam_conv c = { conv, (void *) password };
        pam_handle_t *pamh = NULL;
        int pr, r = -EIO;

        pr = pam_start(service, user, &c, &pamh);
        if (pr != PAM_SUCCESS)
                return -EIO;
        (void) pam_set_item(pamh, PAM_FAIL_DELAY, (const void *) no_delay);
        (void) pam_set_item(pamh, PAM_RUSER, "tokend");
        pr = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        if (pr == PAM_SUCCESS)
                pr = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        switch (pr) {
        case PAM_SUCCESS:
                r = 0;
                break;
        case PAM_AUTH_ERR:
        case PAM_USER_UNKNOWN:
        case PAM_MAXTRIES:
        case PAM_CRED_INSUFFICIENT:
        case PAM_ACCT_EXPIRED:
        case PAM_PERM_DENIED:
        case PAM_NEW_AUTHTOK_REQD:
                r = -EACCES;
                break;
        default: /* PAM_AUTHINFO_UNAVAIL (e.g. shadow unreadable), module errors */
                r = -EIO;
        }
        pam_end(pamh, pr | PAM_DATA_SILENT);
        return r;
}
