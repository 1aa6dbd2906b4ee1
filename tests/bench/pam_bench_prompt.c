/* SPDX-License-Identifier: MIT */
/* pam_bench_prompt.so: the floor of a module that takes a secret through
 * the conversation, for tests/bench/bench-pam only (never installed).
 * auth asks for one secret with echo off, as pam_jwt does, wipes it and
 * succeeds if it is not empty; account and setcred succeed. Next to
 * pam_permit (no conversation at all) it shows what the conversation costs
 * the login (pamtester reads the answer one byte per read(2)), and next
 * to pam_jwt what pam_jwt adds to it: its own work and tokend's. The
 * build hides symbols by default (AM_CFLAGS): the entry points say so. */
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdlib.h>
#include <string.h>

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc,
                                                                          const char **argv) {
        char *answer = NULL;
        (void) flags;
        (void) argc;
        (void) argv;
        int r = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "secret: ");
        if (r != PAM_SUCCESS)
                return r;
        if (!answer)
                return PAM_AUTH_ERR;
        size_t n = strlen(answer);
        explicit_bzero(answer, n);
        free(answer);
        return n > 0 ? PAM_SUCCESS : PAM_AUTH_ERR;
}

static int succeed(pam_handle_t *pamh, int flags, int argc, const char **argv) {
        (void) pamh;
        (void) flags;
        (void) argc;
        (void) argv;
        return PAM_SUCCESS;
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc,
                                                                     const char **argv) {
        return succeed(pamh, flags, argc, argv);
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc,
                                                                       const char **argv) {
        return succeed(pamh, flags, argc, argv);
}
