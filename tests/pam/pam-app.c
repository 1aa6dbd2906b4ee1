/* SPDX-License-Identifier: MIT */
/* A small PAM application for the pam_jwt tests: runs the PAM calls named on
 * the command line against one service (under pam_wrapper, from the test's
 * service directory) and prints, one per line, every prompt it is shown, the
 * fail delay the stack asked for, the name of each call's return code and the
 * final PAM environment (after a first line "READY"). The conversation answers from --answer values, then
 * (with --stdin) from lines of standard input.
 *
 * usage: pam-app [--answer TEXT]... [--answer-file FILE] [--stdin] [--rhost H]
 *                [--tty T] SERVICE USER {auth|auth-silent|setcred|acct|open|close|user:NAME}...
 * exit: 0 every call returned PAM_SUCCESS, 1 one did not, 2 usage/setup error */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

#define MAX_ANSWERS 16
#define MAX_ANSWER_FILE (64 * 1024)

typedef struct App {
        char *answers[MAX_ANSWERS];
        int n_answers;
        int next_answer;
        int use_stdin;
} App;

static const char *code_name(int r) {
        static const struct {
                int code;
                const char *name;
        } names[] = {
#define N(x) { x, #x }
                N(PAM_SUCCESS),          N(PAM_OPEN_ERR),        N(PAM_SYMBOL_ERR),
                N(PAM_SERVICE_ERR),      N(PAM_SYSTEM_ERR),      N(PAM_BUF_ERR),
                N(PAM_PERM_DENIED),      N(PAM_AUTH_ERR),        N(PAM_CRED_INSUFFICIENT),
                N(PAM_AUTHINFO_UNAVAIL), N(PAM_USER_UNKNOWN),    N(PAM_MAXTRIES),
                N(PAM_NEW_AUTHTOK_REQD), N(PAM_ACCT_EXPIRED),    N(PAM_SESSION_ERR),
                N(PAM_CRED_UNAVAIL),     N(PAM_CRED_EXPIRED),    N(PAM_CRED_ERR),
                N(PAM_NO_MODULE_DATA),   N(PAM_CONV_ERR),        N(PAM_AUTHTOK_ERR),
                N(PAM_AUTHTOK_RECOVERY_ERR), N(PAM_AUTHTOK_LOCK_BUSY), N(PAM_AUTHTOK_DISABLE_AGING),
                N(PAM_TRY_AGAIN),        N(PAM_IGNORE),          N(PAM_ABORT),
                N(PAM_AUTHTOK_EXPIRED),  N(PAM_MODULE_UNKNOWN),  N(PAM_BAD_ITEM),
                N(PAM_CONV_AGAIN),       N(PAM_INCOMPLETE),
#undef N
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (names[i].code == r)
                        return names[i].name;
        return "PAM_UNKNOWN_CODE";
}

static char *next_answer(App *app) {
        if (app->next_answer < app->n_answers)
                return strdup(app->answers[app->next_answer++]);
        if (!app->use_stdin)
                return NULL;

        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
                free(line);
                return NULL;
        }
        if (n > 0 && line[n - 1] == '\n')
                line[n - 1] = '\0';
        return line;
}

static void free_replies(struct pam_response *replies, int n) {
        for (int i = 0; i < n; i++)
                free(replies[i].resp);
        free(replies);
}

static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata) {
        App *app = userdata;
        struct pam_response *replies;

        if (n <= 0 || n > PAM_MAX_NUM_MSG)
                return PAM_CONV_ERR;
        replies = calloc((size_t) n, sizeof(*replies));
        if (!replies)
                return PAM_BUF_ERR;

        for (int i = 0; i < n; i++) {
                switch (msg[i]->msg_style) {
                case PAM_PROMPT_ECHO_OFF:
                case PAM_PROMPT_ECHO_ON:
                        printf("PROMPT %s %s\n", msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ? "echo_off" : "echo_on",
                               msg[i]->msg);
                        replies[i].resp = next_answer(app);
                        if (!replies[i].resp) {
                                printf("CONV no answer left\n");
                                free_replies(replies, n);
                                return PAM_CONV_ERR;
                        }
                        break;
                case PAM_ERROR_MSG:
                        printf("ERROR %s\n", msg[i]->msg);
                        break;
                case PAM_TEXT_INFO:
                        printf("INFO %s\n", msg[i]->msg);
                        break;
                default:
                        free_replies(replies, n);
                        return PAM_CONV_ERR;
                }
        }
        fflush(stdout);
        *ret = replies;
        return PAM_SUCCESS;
}

/* Replaces libpam's sleep: the tests see the requested delay, without waiting. */
static void fail_delay(int retval, unsigned usec, void *appdata) {
        (void) appdata;
        printf("FAIL_DELAY %u %s\n", usec, code_name(retval));
}

static int read_file(const char *path, char **ret) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char *buf = malloc(MAX_ANSWER_FILE + 1);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        size_t n = fread(buf, 1, MAX_ANSWER_FILE, f);
        fclose(f);
        while (n > 0 && buf[n - 1] == '\n')
                n--;
        buf[n] = '\0';
        *ret = buf;
        return 0;
}

static int run(pam_handle_t *pamh, const char *op) {
        if (strcmp(op, "auth") == 0)
                return pam_authenticate(pamh, 0);
        if (strcmp(op, "auth-silent") == 0)
                return pam_authenticate(pamh, PAM_SILENT);
        if (strcmp(op, "setcred") == 0)
                return pam_setcred(pamh, PAM_ESTABLISH_CRED);
        if (strcmp(op, "acct") == 0)
                return pam_acct_mgmt(pamh, 0);
        if (strcmp(op, "open") == 0)
                return pam_open_session(pamh, 0);
        if (strcmp(op, "close") == 0)
                return pam_close_session(pamh, 0);
        if (strncmp(op, "user:", 5) == 0) /* change PAM_USER between calls */
                return pam_set_item(pamh, PAM_USER, op + 5);
        return -1;
}

int main(int argc, char **argv) {
        App app = {};
        const char *rhost = NULL, *tty = NULL;
        pam_handle_t *pamh = NULL;
        int i, r, status = 0;

        /* pam_wrapper has set itself up by now (library constructor): tell
         * the test, which serializes that set-up between processes */
        printf("READY\n");
        fflush(stdout);

        for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                const char *opt = argv[i];
                if (strcmp(opt, "--stdin") == 0) {
                        app.use_stdin = 1;
                        continue;
                }
                if (i + 1 >= argc) {
                        fprintf(stderr, "pam-app: %s needs a value\n", opt);
                        return 2;
                }
                const char *v = argv[++i];
                if (strcmp(opt, "--rhost") == 0)
                        rhost = v;
                else if (strcmp(opt, "--tty") == 0)
                        tty = v;
                else if ((strcmp(opt, "--answer") == 0 || strcmp(opt, "--answer-file") == 0) &&
                         app.n_answers < MAX_ANSWERS) {
                        if (opt[8] == '\0')
                                app.answers[app.n_answers] = strdup(v);
                        else if (read_file(v, &app.answers[app.n_answers]) < 0) {
                                fprintf(stderr, "pam-app: cannot read %s\n", v);
                                return 2;
                        }
                        if (!app.answers[app.n_answers++])
                                return 2;
                } else {
                        fprintf(stderr, "pam-app: unknown option %s\n", opt);
                        return 2;
                }
        }
        if (argc - i < 3) {
                fprintf(stderr, "usage: pam-app [options] SERVICE USER OP...\n");
                return 2;
        }

        struct pam_conv conv = { conversation, &app };
        r = pam_start(argv[i], argv[i + 1], &conv, &pamh);
        if (r != PAM_SUCCESS) {
                fprintf(stderr, "pam-app: pam_start: %s\n", code_name(r));
                return 2;
        }
        if ((rhost && pam_set_item(pamh, PAM_RHOST, rhost) != PAM_SUCCESS) ||
            (tty && pam_set_item(pamh, PAM_TTY, tty) != PAM_SUCCESS) ||
            pam_set_item(pamh, PAM_FAIL_DELAY, (const void *) fail_delay) != PAM_SUCCESS) {
                fprintf(stderr, "pam-app: pam_set_item failed\n");
                (void) pam_end(pamh, PAM_SYSTEM_ERR);
                return 2;
        }

        for (i += 2; i < argc; i++) {
                r = run(pamh, argv[i]);
                if (r < 0) {
                        fprintf(stderr, "pam-app: unknown operation %s\n", argv[i]);
                        status = 2;
                        break;
                }
                printf("%s %s\n", argv[i], code_name(r));
                fflush(stdout);
                if (r != PAM_SUCCESS)
                        status = 1;
        }

        char **env = pam_getenvlist(pamh);
        for (char **e = env; e && *e; e++) {
                printf("ENV %s\n", *e);
                free(*e);
        }
        free(env);

        (void) pam_end(pamh, status == 0 ? PAM_SUCCESS : PAM_AUTH_ERR);
        for (int k = 0; k < app.n_answers; k++)
                free(app.answers[k]);
        return status;
}
