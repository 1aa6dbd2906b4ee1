/* SPDX-License-Identifier: MIT */
/* libFuzzer target: tokend's socket API end to end — request bytes in,
 * response out (daemon/tokend-http.c over libmicrohttpd, the service,
 * the SQLite store, keys, rate limiters, worker pools), against a real
 * daemon context started once per process in a temporary directory
 * ($TMPDIR, else /dev/shm, else /tmp: the store fsyncs) on a listening
 * AF_UNIX socket, with [Limits] MaxRequestBytes=16384, RequestTimeout=1s,
 * [Login] FailureDelay=0 (no held-back answers), no device cap or peer-login
 * rate (every input may enrol a device) and [API] EnableDocs=yes.
 *
 * Each input is written (at most 64 KiB) to a new connection, then
 * shutdown(SHUT_WR); the answer is read until EOF. Placeholders let the
 * fuzzer reach the code behind valid credentials: "@AT@", "@RT@" and
 * "@DEV@" become the access token, refresh token and device id of a fresh
 * root enrolment (one td_issue per input that names any), "@CL@" the
 * length of what follows the next blank line (a Content-Length that stays
 * right when the others change the body).
 *
 * Password logins never reach a real PAM stack: this file defines the few
 * pam_* functions daemon/tokend-pamauth.c calls (the program does not link
 * libpam), accepting user "root" with password "fuzz-password" and refusing
 * everything else, fast and without a module's fail delay. So PAM never
 * fails on the server side, and every 500 is a finding.
 *
 * Invariants: the daemon answers or closes the connection (no 2 s without
 * progress); every answer it sends starts "HTTP/1.1 NNN "; no 5xx but 503
 * (busy) and 505 (HTTP version, from libmicrohttpd); and every 64 inputs a
 * well-formed GET /.well-known/jwks.json on a new connection still gets
 * 200. Every 1024 inputs the store is emptied (store_prune in the far
 * future), so the device lists do not grow with the run. Peer
 * credentials are the fuzzer's own (root here, an admin).
 * Daemon log lines go to /dev/null unless FUZZ_HTTP_LOG is set;
 * FUZZ_HTTP_TRACE=1 prints the first line of each answer (for seeds). */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "tokend-device-grants.h"
#include "tokend-http.h"
#include "tokend-workers.h"
#include "tokend.h"

#define INPUT_MAX (64U * 1024U)
#define ANSWER_KEEP (16U * 1024U)      /* bytes of the answer kept for the checks */
#define STALL_MSEC 2000                /* no byte and no EOF for this long: a hang */
#define ANSWER_MAX_MSEC 8000           /* stop reading a long (pipelined) answer */
#define CHECK_EVERY 64U
#define PRUNE_EVERY 1024U
/* Prune "now" for an empty store: every refresh token expired, every device
 * idle for longer than STORE_RETENTION. */
#define PRUNE_FUTURE ((int64_t) 10 * 365 * 24 * 3600)
#define FUZZ_USER "root"
#define FUZZ_PASSWORD "fuzz-password"

static FILE *fuzz_err;                 /* the real stderr: daemon logs go elsewhere */
static char state_dir[64];
static char sock_path[sizeof ((struct sockaddr_un *) NULL)->sun_path];
static tokend daemon_ctx;
static unsigned long n_inputs;
static bool trace;

#define HTTP_CHECK(cond, ...)                                                             \
        do {                                                                              \
                if (!(cond))                                                              \
                        check_failed(__LINE__, #cond, __VA_ARGS__);                       \
        } while (0)

_printf_(3, 4) _Noreturn static void check_failed(int line, const char *what, const char *fmt, ...) {
        va_list ap;

        fprintf(fuzz_err, "fuzz-http.c:%d: invariant violated: %s: ", line, what);
        va_start(ap, fmt);
        vfprintf(fuzz_err, fmt, ap);
        va_end(ap);
        fputc('\n', fuzz_err);
        fflush(fuzz_err);
        __builtin_trap();
}

/* ---- a stand-in for libpam ------------------------------------------ */

struct pam_handle {
        char *user;
        struct pam_conv conv;
};

int pam_start(const char *service_name, const char *user, const struct pam_conv *pam_conversation,
              pam_handle_t **pamh) {
        pam_handle_t *h;

        (void) service_name;
        if (!user)
                return PAM_SYSTEM_ERR;
        h = calloc(1, sizeof *h);
        if (!h || !(h->user = strdup(user))) {
                free(h);
                return PAM_BUF_ERR;
        }
        h->conv = *pam_conversation;
        *pamh = h;
        return PAM_SUCCESS;
}

int pam_set_item(pam_handle_t *pamh, int item_type, const void *item) {
        (void) pamh, (void) item_type, (void) item;
        return PAM_SUCCESS;
}

int pam_authenticate(pam_handle_t *pamh, int flags) {
        const struct pam_message m = { .msg_style = PAM_PROMPT_ECHO_OFF, .msg = "Password: " };
        const struct pam_message *mp = &m;
        struct pam_response *resp = NULL;
        int r;

        (void) flags;
        r = pamh->conv.conv(1, &mp, &resp, pamh->conv.appdata_ptr);
        if (r != PAM_SUCCESS)
                return PAM_CONV_ERR;
        HTTP_CHECK(resp && resp[0].resp, "the conversation answered no password");
        r = streq(pamh->user, FUZZ_USER) && streq(resp[0].resp, FUZZ_PASSWORD) ? PAM_SUCCESS : PAM_AUTH_ERR;
        erase_and_free(resp[0].resp);
        free(resp);
        return r;
}

int pam_acct_mgmt(pam_handle_t *pamh, int flags) {
        (void) pamh, (void) flags;
        return PAM_SUCCESS;
}

int pam_end(pam_handle_t *pamh, int pam_status) {
        (void) pam_status;
        free(pamh->user);
        free(pamh);
        return PAM_SUCCESS;
}

/* ---- set-up --------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) ftw;
        return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_state_dir(void) {
        if (state_dir[0])
                (void) nftw(state_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_state_dir(void) {
        const char *bases[] = { getenv("TMPDIR"), "/dev/shm", "/tmp" };

        for (size_t i = 0; i < ELEMENTSOF(bases); i++) {
                if (!bases[i] || !bases[i][0] || access(bases[i], W_OK) < 0)
                        continue;
                if (snprintf(state_dir, sizeof state_dir, "%s/fuzz-http.XXXXXX", bases[i]) >= (int) sizeof state_dir)
                        continue;
                if (mkdtemp(state_dir))
                        return;
        }
        HTTP_CHECK(false, "no writable temporary directory");
}

static void write_config(const char *path) {
        FILE *f = fopen(path, "we");

        HTTP_CHECK(f, "%s: %m", path);
        fprintf(f,
                "[Socket]\nPath=%s\n"
                "[Bus]\nBus=none\n"
                "[Login]\nPAMService=fuzz-none\nAllowPeerLogin=yes\nMaxFailures=1000000\nFailureWindow=1s\n"
                "FailureDelay=0\nMaxDevicesPerUser=1000000\nPeerLoginRate=1000000\n"
                "[Limits]\nMaxRequestBytes=16384\nRequestTimeout=1s\nMaxConnections=64\n"
                "[API]\nEnableDocs=yes\n",
                sock_path);
        HTTP_CHECK(fclose(f) == 0, "%s: %m", path);
}

static int listen_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        HTTP_CHECK(fd >= 0 && strlen(path) < sizeof sa.sun_path, "socket: %m");
        strcpy(sa.sun_path, path);
        HTTP_CHECK(bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 && listen(fd, SOMAXCONN) == 0, "%s: %m", path);
        return fd;
}

static void start_daemon(void) {
        _cleanup_(freep) char *err = NULL;
        char conf[sizeof state_dir + 16];
        workers *login_workers = NULL;
        http_server *srv = NULL;
        tokend *t = &daemon_ctx;
        int r;

        make_state_dir();
        snprintf(sock_path, sizeof sock_path, "%s/sock", state_dir);
        snprintf(conf, sizeof conf, "%s/tokend.conf", state_dir);
        write_config(conf);
        pthread_rwlock_init(&t->lock, NULL);
        r = tokend_config_load(conf, state_dir, &t->config, &err);
        HTTP_CHECK(r >= 0, "configuration: %s", err ? err : strerror(-r));
        r = keydir_generate(t->config->keys_directory, t->config->algorithm, NULL, NULL, &err);
        HTTP_CHECK(r >= 0, "keydir_generate: %s", err ? err : strerror(-r));
        r = keydir_load(t->config->keys_directory, geteuid(), NULL, NULL, &t->keys, &err);
        HTTP_CHECK(r >= 0, "keydir_load: %s", err ? err : strerror(-r));
        r = store_open(t->config->database, &t->store);
        HTTP_CHECK(r >= 0, "store_open %s: %s", t->config->database, strerror(-r));
        HTTP_CHECK(tokend_limits_new(t) >= 0, "tokend_limits_new");
        HTTP_CHECK(device_grants_new(&t->device_grants) >= 0, "device_grants_new");
        HTTP_CHECK(workers_new(2, 64, &login_workers) >= 0, "workers_new");
        http_limits lim = {
                .max_request_bytes = t->config->max_request_bytes,
                .timeout = (unsigned) t->config->request_timeout,
                .max_connections = t->config->max_connections,
                .threads = 2,
                .enable_docs = t->config->enable_docs,
        };
        r = http_server_start(t, login_workers, listen_unix(sock_path), &lim, &srv);
        HTTP_CHECK(r >= 0, "http_server_start: %s", strerror(-r));
        /* Runs until the process exits: the fuzzer never stops it. */
}

/* ---- one exchange ----------------------------------------------------- */

static int64_t now_msec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send req, half-close, read the answer until EOF (the first ANSWER_KEEP
 * bytes into buf, NUL-terminated). Traps when the daemon stalls. Returns
 * the number of bytes kept. */
static size_t exchange(const uint8_t *req, size_t len, char *buf, size_t buf_size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int64_t start = now_msec(), last = start;
        size_t sent = 0, kept = 0;
        bool wr_open = true;
        char junk[4096];

        HTTP_CHECK(fd >= 0, "socket: %m");
        strcpy(sa.sun_path, sock_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                /* A full backlog (EAGAIN) is the daemon being slow: retry once after a while. */
                HTTP_CHECK(errno == EAGAIN, "connect %s: %m", sock_path);
                usleep(100 * 1000);
                HTTP_CHECK(connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0, "connect %s: %m", sock_path);
        }
        for (;;) {
                if (wr_open && sent == len) {
                        /* An EOF that arrives with the last bytes is missed by
                         * libmicrohttpd 0.9.75's edge-triggered epoll: an
                         * incomplete request would then wait for RequestTimeout. */
                        usleep(1000);
                        (void) shutdown(fd, SHUT_WR);
                        wr_open = false;
                }
                struct pollfd p = { .fd = fd, .events = (short) (POLLIN | (wr_open ? POLLOUT : 0)) };
                int64_t now = now_msec();
                if (now - start > ANSWER_MAX_MSEC)
                        break; /* still talking: not a hang */
                HTTP_CHECK(now - last <= STALL_MSEC, "no answer and no close for %d ms (sent %zu of %zu bytes)",
                           STALL_MSEC, sent, len);
                int n = poll(&p, 1, 100);
                if (n < 0 && errno == EINTR)
                        continue;
                HTTP_CHECK(n >= 0, "poll: %m");
                if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t w = send(fd, req + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w > 0) {
                                sent += (size_t) w;
                                last = now_msec();
                        } else if (w < 0 && errno != EAGAIN && errno != EINTR)
                                wr_open = false; /* the daemon answered and closed early */
                }
                if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
                        char *dst = kept + 1 < buf_size ? buf + kept : junk;
                        size_t room = kept + 1 < buf_size ? buf_size - 1 - kept : sizeof junk;
                        ssize_t r = recv(fd, dst, room, MSG_DONTWAIT);
                        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                                break; /* EOF, or reset after an early answer */
                        if (r > 0) {
                                if (dst != junk)
                                        kept += (size_t) r;
                                last = now_msec();
                        }
                }
        }
        buf[kept] = 0;
        return kept;
}

/* The status of the response at s (len bytes), or -1 when s does not
 * start like one. Sets *ret_next past it when its length is known. */
static int parse_response(const char *s, size_t len, size_t *ret_next) {
        const char *end, *cl;
        size_t body = 0;

        if (len < 13 || memcmp(s, "HTTP/1.1 ", 9) != 0 || !strchr("12345", s[9]) || s[10] < '0' ||
            s[10] > '9' || s[11] < '0' || s[11] > '9' || s[12] != ' ')
                return -1;
        int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        end = memmem(s, len, "\r\n\r\n", 4);
        if (!end)
                return status;
        cl = memmem(s, (size_t) (end - s), "\r\nContent-Length: ", 18);
        if (cl)
                body = strtoul(cl + 18, NULL, 10);
        *ret_next = (size_t) (end + 4 - s) + body;
        return status;
}

static bool status_ok(int status) {
        return status < 500 || status == 503 || status == 505;
}

static void check_answer(const char *a, size_t len) {
        size_t off = 0, next = SIZE_MAX;
        int status;

        if (len == 0)
                return; /* closed without an answer: fine */
        status = parse_response(a, len, &next);
        HTTP_CHECK(status >= 0, "the answer does not start with a status line: %.40s", a);
        HTTP_CHECK(status_ok(status), "status %d: %.300s", status, a);
        /* Pipelined requests: check what can be followed (HEAD answers have
         * a Content-Length but no body; parsing stops at the first surprise). */
        while (next != SIZE_MAX && next < len - off) {
                off += next;
                next = SIZE_MAX;
                status = parse_response(a + off, len - off, &next);
                if (status < 0)
                        break;
                HTTP_CHECK(status_ok(status), "status %d in a later answer: %.300s", status, a + off);
        }
}

static void check_alive(void) {
        static const char req[] = "GET /.well-known/jwks.json HTTP/1.1\r\nHost: tokend\r\n\r\n";
        char buf[1024];
        size_t next = SIZE_MAX;
        size_t n = exchange((const uint8_t *) req, strlen(req), buf, sizeof buf);

        HTTP_CHECK(parse_response(buf, n, &next) == 200, "JWKS after %lu inputs: %.200s", n_inputs, buf);
}

/* ---- placeholders ----------------------------------------------------- */

typedef struct subst {
        uint8_t *buf;
        size_t len, cap;
} subst;

static bool put(subst *o, const void *p, size_t n) {
        if (n > o->cap - o->len)
                return false;
        memcpy(o->buf + o->len, p, n);
        o->len += n;
        return true;
}

/* Expand the placeholders of in into o (capped at INPUT_MAX). Returns
 * false when the result would be too large. */
static bool expand(const uint8_t *in, size_t size, subst *o) {
        _cleanup_(td_tokens_done) td_tokens tok = { 0 };
        const td_caller root = { .uid = 0, .gid = 0, .pid = getpid() };
        const td_issue_req ir = { .device_name = "fuzz" };
        size_t cl_at = SIZE_MAX;
        td_status st = { 0 };
        bool issued = false;

        for (size_t i = 0; i < size;) {
                const char *v = NULL;
                size_t skip = 0;
                if (in[i] == '@') {
                        static const char *const names[] = { "@AT@", "@RT@", "@DEV@", "@CL@" };
                        for (size_t k = 0; k < ELEMENTSOF(names); k++)
                                if (size - i >= strlen(names[k]) && memcmp(in + i, names[k], strlen(names[k])) == 0)
                                        skip = strlen(names[k]), v = names[k];
                }
                if (!v) {
                        if (!put(o, in + i, 1))
                                return false;
                        i++;
                        continue;
                }
                i += skip;
                if (streq(v, "@CL@")) {
                        if (cl_at == SIZE_MAX)
                                cl_at = o->len; /* filled in at the end */
                        continue;
                }
                if (!issued) {
                        HTTP_CHECK(td_issue(&daemon_ctx, &root, &ir, &tok, &st) == TD_OK, "td_issue: %s", st.message);
                        issued = true;
                }
                v = streq(v, "@AT@") ? tok.access_token : streq(v, "@RT@") ? tok.refresh_token : tok.device_id;
                if (!put(o, v, strlen(v)))
                        return false;
        }
        if (cl_at != SIZE_MAX) {
                const uint8_t *blank = memmem(o->buf + cl_at, o->len - cl_at, "\r\n\r\n", 4);
                size_t body = blank ? o->len - (size_t) (blank + 4 - o->buf) : 0;
                char num[24];
                int n = snprintf(num, sizeof num, "%zu", body);
                if ((size_t) n > o->cap - o->len)
                        return false;
                memmove(o->buf + cl_at + (size_t) n, o->buf + cl_at, o->len - cl_at);
                memcpy(o->buf + cl_at, num, (size_t) n);
                o->len += (size_t) n;
        }
        return true;
}

/* ---- libFuzzer ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        static const char login[] = "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                                    "Content-Length: @CL@\r\n\r\n"
                                    "{\"username\":\"" FUZZ_USER "\",\"password\":\"" FUZZ_PASSWORD "\"}";
        static uint8_t buf[sizeof login + 32];
        char answer[1024];
        size_t next = SIZE_MAX;
        subst o = { .buf = buf, .cap = sizeof buf };

        (void) argc;
        (void) argv;
        fuzz_err = stderr;
        /* The daemon logs every refused request at LOG_INFO to stderr; the
         * fuzzer's own output and sanitizer reports do not use this FILE. */
        if (!getenv("FUZZ_HTTP_LOG")) {
                FILE *null = fopen("/dev/null", "we");
                HTTP_CHECK(null, "/dev/null: %m");
                stderr = null;
        }
        trace = getenv("FUZZ_HTTP_TRACE");
        start_daemon();
        atexit(remove_state_dir);
        /* The set-up works: a password login is answered with tokens. */
        HTTP_CHECK(expand((const uint8_t *) login, strlen(login), &o), "login request too large");
        size_t n = exchange(o.buf, o.len, answer, sizeof answer);
        HTTP_CHECK(parse_response(answer, n, &next) == 200 && strstr(answer, "\"access_token\""),
                   "the control login failed: %.300s", answer);
        check_alive();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t buf[INPUT_MAX];
        static char answer[ANSWER_KEEP];
        subst o = { .buf = buf, .cap = sizeof buf };

        if (size > INPUT_MAX || !expand(data, size, &o))
                return 0;
        size_t n = exchange(o.buf, o.len, answer, sizeof answer);
        if (trace)
                fprintf(fuzz_err, "answer: %.*s\n", (int) strcspn(answer, "\r\n"), answer);
        check_answer(answer, n);
        if (++n_inputs % CHECK_EVERY == 0)
                check_alive();
        /* Each login and issue adds a device, and root's device list (and
         * so each GET /api/devices) would grow for the whole run. */
        if (n_inputs % PRUNE_EVERY == 0)
                HTTP_CHECK(store_prune(daemon_ctx.store, (int64_t) time(NULL) + PRUNE_FUTURE) >= 0, "store_prune");
        return 0;
}
