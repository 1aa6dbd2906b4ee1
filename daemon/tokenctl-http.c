/* SPDX-License-Identifier: MIT */
/* The socket transport of tokenctl: tokend's HTTP/1.1 + JSON API on its
 * Unix socket (libcurl with CURLOPT_UNIX_SOCKET_PATH). One JSON request,
 * one JSON answer, bounded in size and time; secrets in bodies and headers
 * are wiped after use. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json-util.h"
#include "tokenctl-answer.h"
#include "tokenctl-issuer.h"
#include "tokenctl-transport.h"

#define ANSWER_MAX_DEPTH 16U
#define CONNECT_TIMEOUT_MS 5000L

typedef struct buf {
        char *data;
        size_t len, cap;
        bool too_big;
} buf;

static void buf_done(buf *b) {
        erase_and_free_buf(b->data, b->cap);
        *b = (buf){ 0 };
}

/* The answer may hold tokens: grow by copying and wiping, never realloc. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        buf *b = userdata;
        size_t n = size * nmemb;

        if (n > TC_ANSWER_MAX - b->len) {
                b->too_big = true;
                return 0;
        }
        if (erase_buf_append(&b->data, &b->len, &b->cap, 4096, ptr, n) < 0)
                return 0;
        return n;
}

static void slist_wipe_free(struct curl_slist *l) {
        for (struct curl_slist *i = l; i; i = i->next)
                explicit_bzero(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

static int add_header(struct curl_slist **l, const char *h) {
        struct curl_slist *n = curl_slist_append(*l, h);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static const char *file_kind(mode_t m) {
        return S_ISREG(m) ? "a regular file" : S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO"
               : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISLNK(m) ? "a symlink"
                                                                 : "not a socket";
}

/* Why connecting to ctx->socket failed, from the path itself (curl reports
 * "couldn't connect" for all of these; connect() on a file that is not a
 * socket says ECONNREFUSED): printed with the errno text and what to do.
 * Returns the -errno (every one maps to EXIT_UNREACHABLE). */
static int report_connect(const tc_ctx *ctx, long os_errno) {
        const char *path = ctx->socket;
        /* Where a path other than the default came from, for the hint. */
        const char *from = streq(path, TOKENCTL_DEFAULT_SOCKET) ? NULL
                           : ctx->socket_given                  ? "--socket"
                                                                : "$TOKEND_SOCKET";
        struct stat st;
        int e = stat(path, &st) < 0 ? errno : !S_ISSOCK(st.st_mode) ? ENOTSOCK : (int) os_errno;

        switch (e) {
        case ENOENT:
        case ENOTDIR:
                if (from)
                        tc_error(ctx, 0, "cannot reach tokend: no socket at %s (%s); this path comes from %s, "
                                 "the default is %s: check the path, or start tokend there", path, strerror(e),
                                 from, TOKENCTL_DEFAULT_SOCKET);
                else
                        tc_error(ctx, 0, "cannot reach tokend: no socket at %s (%s): tokend is not running: "
                                 "systemctl start tokend.socket", path, strerror(e));
                return -ENOENT;
        case ENOTSOCK:
                tc_error(ctx, 0, "cannot reach tokend: %s is %s, not a socket (%s); %s", path, file_kind(st.st_mode),
                         strerror(e), from ? "give tokend's socket ([Socket] Path=, default " TOKENCTL_DEFAULT_SOCKET ")"
                                           : "something replaced tokend's socket: systemctl restart tokend.socket");
                return -ENOTSOCK;
        case EACCES:
        case EPERM:
                tc_error(ctx, 0, "cannot reach tokend: permission denied on %s (%s): you (uid %u) may not use the "
                         "socket or a directory above it; check their modes and owners ([Socket] Mode=, "
                         "SocketMode= in tokend.socket)", path, strerror(e), (unsigned) getuid());
                return -EACCES;
        case ECONNREFUSED:
                tc_error(ctx, 0, "cannot reach tokend: nothing is listening on %s (%s): tokend is not running: "
                         "systemctl start tokend.socket", path, strerror(e));
                return -ECONNREFUSED;
        case EAGAIN:
                tc_error(ctx, 0, "cannot reach tokend: its queue on %s is full (%s): tokend is overloaded or "
                         "stuck; try again, or see systemctl status tokend", path, strerror(e));
                return -EAGAIN;
        default:
                tc_error(ctx, 0, "cannot reach tokend: cannot connect to %s (%s)", path,
                         e ? strerror(e) : "unknown error");
                return -ECONNREFUSED;
        }
}

/* Why the issuer (--issuer) could not be asked; errbuf is curl's detail. */
static int report_network(const tc_ctx *ctx, CURLcode cc, const char *errbuf) {
        const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        switch (cc) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                tc_error(ctx, 0, "cannot reach the issuer %s: TLS failed: %s%s", ctx->issuer, detail,
                         cc == CURLE_PEER_FAILED_VERIFICATION ? " (give its CA with --ca-file or ca-file= in "
                                                                "~/.config/tokend/tokenctl.conf)" : "");
                return -ECONNABORTED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                tc_error(ctx, 0, "cannot reach the issuer %s: %s", ctx->issuer, detail);
                return -ENOENT;
        case CURLE_COULDNT_CONNECT:
                tc_error(ctx, 0, "cannot reach the issuer %s: %s", ctx->issuer, detail);
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                tc_error(ctx, 0, "cannot reach the issuer %s: no answer within %ld s (%s)", ctx->issuer,
                         TC_CALL_TIMEOUT_MS / 1000, detail);
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                tc_error(ctx, 0, "talking to the issuer %s failed: %s", ctx->issuer, detail);
                return -EIO;
        }
}

static int report_transport(const tc_ctx *ctx, CURLcode cc, long os_errno, bool too_big, const char *errbuf) {
        if (too_big) {
                tc_error(ctx, 0, "the answer of tokend on %s is larger than %u bytes; is this really tokend?",
                         ctx->issuer ?: ctx->socket, TC_ANSWER_MAX);
                return -E2BIG;
        }
        if (ctx->issuer)
                return report_network(ctx, cc, errbuf);
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                return report_connect(ctx, os_errno);
        case CURLE_OPERATION_TIMEDOUT:
                tc_error(ctx, 0, "cannot reach tokend: %s accepted the connection but nothing answered within %ld s "
                         "(%s): tokend is stuck or this is not tokend; check systemctl status tokend and "
                         "journalctl -u tokend", ctx->socket, TC_CALL_TIMEOUT_MS / 1000, strerror(ETIMEDOUT));
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM; /* printed by tc_http() */
        default:
                tc_error(ctx, 0, "talking to tokend on %s failed: %s", ctx->socket, curl_easy_strerror(cc));
                return -EIO;
        }
}

/* HTTPS to the issuer: https only (no redirect elsewhere), TLS 1.2+, the
 * peer and its host name always verified (libcurl's defaults, set anyway
 * so that no environment changes them), against --ca-file if given. */
static int setup_network(const tc_ctx *ctx, CURL *c, char *errbuf) {
        if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            (ctx->ca_file && curl_easy_setopt(c, CURLOPT_CAINFO, ctx->ca_file) != CURLE_OK))
                return -ENOMEM;
        return 0;
}

static int http_exchange(const tc_ctx *ctx, const char *method, const char *path, const json_t *body,
                         const char *form, const char *bearer, tc_answer *ret) {
        _cleanup_(erase_and_freep) char *req = NULL, *auth = NULL;
        struct curl_slist *hdrs = NULL;
        buf b = { 0 };
        char url[TC_ISSUER_URL_MAX + 512], errbuf[CURL_ERROR_SIZE] = "";
        long status = 0, os_errno = 0;
        int r = -ENOMEM;

        if ((size_t) snprintf(url, sizeof url, "%s%s", ctx->issuer ?: "http://localhost", path) >= sizeof url)
                return -ENAMETOOLONG;
        if (body && td_json_dump_compact(body, &req) < 0)
                return -ENOMEM;
        if (form && !(req = strdup(form)))
                return -ENOMEM;
        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        if (add_header(&hdrs, "Accept: application/json") < 0 || add_header(&hdrs, "Expect:") < 0 ||
            (body && add_header(&hdrs, "Content-Type: application/json") < 0) ||
            (form && add_header(&hdrs, "Content-Type: application/x-www-form-urlencoded") < 0))
                goto out;
        if (bearer) {
                if (asprintf(&auth, "Authorization: Bearer %s", bearer) < 0) {
                        auth = NULL;
                        goto out;
                }
                if (add_header(&hdrs, auth) < 0)
                        goto out;
        }
        if (ctx->issuer ? setup_network(ctx, c, errbuf) < 0
                        : curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctx->socket) != CURLE_OK ||
                                  curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK)
                goto out;
        if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TC_CALL_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "tokenctl/" PACKAGE_VERSION) != CURLE_OK)
                goto out;
        if (streq(method, "POST")) {
                const char *p = req ? req : "";
                if (curl_easy_setopt(c, CURLOPT_POSTFIELDS, p) != CURLE_OK ||
                    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) strlen(p)) != CURLE_OK)
                        goto out;
        } else if (!streq(method, "GET") && curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                goto out;

        CURLcode cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
                (void) curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
                r = report_transport(ctx, cc, os_errno, b.too_big, errbuf);
                goto out;
        }
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        tc_answer a = { .status = status };
        if (b.len > 0) {
                /* Any answer with a body is JSON from tokend; a body that is
                 * not is answered as a protocol error. */
                if (td_json_parse_object(b.data, b.len, TC_ANSWER_MAX, ANSWER_MAX_DEPTH, &a.body, NULL) < 0) {
                        tc_error(ctx, 0, "the answer on %s (HTTP %ld) is not JSON; is this really tokend?",
                                 ctx->issuer ?: ctx->socket, status);
                        r = -EIO;
                        goto out;
                }
        }
        *ret = a;
        r = 0;
out:
        buf_done(&b);
        slist_wipe_free(hdrs);
        curl_easy_cleanup(c);
        return r;
}

/* Send method path to tokend on ctx->socket. body (may be NULL) is sent as
 * application/json; bearer (may be NULL) as "Authorization: Bearer".
 * Returns 0 with *ret filled (any HTTP status: the caller decides), or the
 * -errno of a tc_transport operation after printing why. */
static int tc_http(const tc_ctx *ctx, const char *method, const char *path, const json_t *body, const char *bearer,
                   tc_answer *ret) {
        int r = http_exchange(ctx, method, path, body, NULL, bearer, ret);
        if (r == -ENOMEM)
                tc_error(ctx, 0, "out of memory");
        else if (r == -ENAMETOOLONG)
                tc_error(ctx, 0, "the request path is too long");
        return r;
}

int tc_http_form(const tc_ctx *ctx, const char *path, const char *form, tc_answer *ret) {
        int r = http_exchange(ctx, "POST", path, NULL, form, NULL, ret);
        if (r == -ENOMEM)
                tc_error(ctx, 0, "out of memory");
        return r;
}

int tc_http_json(const tc_ctx *ctx, const char *path, const json_t *body, const char *bearer, tc_answer *ret) {
        return tc_http(ctx, "POST", path, body, bearer, ret);
}

/* Percent-escape s for a path segment or query value; malloc'ed, or NULL. */
static char *http_escape(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0);
        if (!e)
                return NULL;
        char *copy = strdup(e);
        curl_free(e);
        return copy;
}

static int oom(const tc_ctx *ctx) {
        tc_error(ctx, 0, "out of memory");
        return -ENOMEM;
}

static int http_post(const tc_ctx *ctx, const char *path, json_t *body, tc_answer *ret) {
        if (!body)
                return oom(ctx);
        return tc_http(ctx, "POST", path, body, NULL, ret);
}

static int http_login(const tc_ctx *ctx, const tc_login_req *req, tc_answer *ret) {
        /* jansson memory is wiped on free (tokenctl.c), so is the password */
        _cleanup_(json_decrefp) json_t *body = NULL;

        if (req->password)
                body = json_pack("{s:s,s:s,s:s?,s:s?}", "username", req->user, "password", req->password,
                                 "device_name", req->device_name, "device_key", req->device_key);
        else
                body = json_pack("{s:s?,s:s?,s:s?}", "user", req->user, "device_name", req->device_name,
                                 "device_key", req->device_key);
        return http_post(ctx, req->password ? "/api/auth/login" : "/api/auth/token", body, ret);
}

static int http_refresh(const tc_ctx *ctx, const tc_refresh_req *req, tc_answer *ret) {
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:s,s:s,s:s?,s:s?}", "refresh_token", req->refresh_token,
                                                         "device_id", req->device_id, "proof", req->proof,
                                                         "audience", req->audience);
        if (body && req->ttl > 0 && json_object_set_new(body, "ttl", json_integer(req->ttl)) < 0)
                return oom(ctx);
        return http_post(ctx, "/api/auth/refresh", body, ret);
}

static int http_logout(const tc_ctx *ctx, const char *access_token, tc_answer *ret) {
        return tc_http(ctx, "POST", "/api/auth/logout", NULL, access_token, ret);
}

static int http_verify(const tc_ctx *ctx, const char *token, const char *user, const char *service,
                       tc_answer *ret) {
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:s,s:s?,s:s?}", "token", token, "user", user, "service",
                                                         service);
        return http_post(ctx, "/api/auth/verify", body, ret);
}

/* GET what?limit=&user=&cursor= (one page of a listing). */
static int http_listing(const tc_ctx *ctx, const char *what, const char *user, const char *cursor, tc_answer *ret) {
        _cleanup_(freep) char *u = NULL, *c = NULL, *path = NULL;

        if ((user && !(u = http_escape(user))) || (cursor && !(c = http_escape(cursor))) ||
            asprintf(&path, "%s?limit=%u%s%s%s%s", what, TC_DEVICES_PAGE, u ? "&user=" : "", u ? u : "",
                     c ? "&cursor=" : "", c ? c : "") < 0) {
                path = NULL;
                return oom(ctx);
        }
        return tc_http(ctx, "GET", path, NULL, ctx->bearer, ret);
}

static int http_devices_list(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret) {
        return http_listing(ctx, "/api/devices", user, cursor, ret);
}

static int http_audit_list(const tc_ctx *ctx, const char *user, const char *cursor, tc_answer *ret) {
        return http_listing(ctx, "/api/audit", user, cursor, ret);
}

static int http_device_revoke(const tc_ctx *ctx, const char *device_id, tc_answer *ret) {
        _cleanup_(freep) char *esc = NULL, *path = NULL;

        if (!(esc = http_escape(device_id)) || asprintf(&path, "/api/devices/%s", esc) < 0) {
                path = NULL;
                return oom(ctx);
        }
        return tc_http(ctx, "DELETE", path, NULL, ctx->bearer, ret);
}

static int http_unlock(const tc_ctx *ctx, const char *user, tc_answer *ret) {
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "user", user);
        return http_post(ctx, "/api/unlock", body, ret);
}

static int http_jwks(const tc_ctx *ctx, tc_answer *ret) {
        return tc_http(ctx, "GET", "/.well-known/jwks.json", NULL, NULL, ret);
}

/* The socket and the issuer (--issuer, HTTPS) share every operation above,
 * which look at ctx->issuer; only the name differs. No peer login over the
 * network (tokend answers 403). */
#define HTTP_OPERATIONS                          \
        .registers_device_key = true,            \
        .chooses_audience = true,                \
        .login = http_login,                     \
        .refresh = http_refresh,                 \
        .logout = http_logout,                   \
        .verify = http_verify,                   \
        .devices_list = http_devices_list,       \
        .audit_list = http_audit_list,           \
        .device_revoke = http_device_revoke,     \
        .unlock = http_unlock,                   \
        .jwks = http_jwks

const tc_transport tc_transport_network = { .name = "the issuer", HTTP_OPERATIONS };
const tc_transport tc_transport_socket = { .name = "the socket", HTTP_OPERATIONS };
