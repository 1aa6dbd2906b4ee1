#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "tokenctl-http.h"

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

        if (n > TC_HTTP_MAX_ANSWER - b->len) {
                b->too_big = true;
                return 0;
        }
        if (b->len + n + 1 > b->cap) {
                size_t nc = b->cap ? b->cap : 4096;
                while (nc < b->len + n + 1)
                        nc *= 2;
                char *nb = malloc(nc);
                if (!nb)
                        return 0;
                if (b->data)
                        memcpy(nb, b->data, b->len);
                erase_and_free_buf(b->data, b->cap);
                b->data = nb;
                b->cap = nc;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = 0;
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

static int report_transport(const tc_ctx *ctx, CURLcode cc, long os_errno, bool too_big) {
        if (too_big) {
                tc_error(ctx, 0, "the answer of tokend on %s is larger than %u bytes; is this really tokend?",
                         ctx->socket, TC_HTTP_MAX_ANSWER);
                return -E2BIG;
        }
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                if (os_errno == EACCES || os_errno == EPERM) {
                        tc_error(ctx, 0, "permission denied on the socket %s: check its mode ([Socket] Mode=)",
                                 ctx->socket);
                        return -ECONNREFUSED;
                }
                tc_error(ctx, 0, "tokend is not running: systemctl start tokend.socket (socket %s)", ctx->socket);
                return os_errno == ENOENT ? -ENOENT : -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                tc_error(ctx, 0, "tokend on %s did not answer in time: check it with systemctl status tokend",
                         ctx->socket);
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                tc_error(ctx, 0, "out of memory");
                return -ENOMEM;
        default:
                tc_error(ctx, 0, "talking to tokend on %s failed: %s", ctx->socket, curl_easy_strerror(cc));
                return -EIO;
        }
}

int tc_http(const tc_ctx *ctx, const char *method, const char *path, const json_t *body, const char *bearer,
            tc_answer *ret) {
        _cleanup_(erase_and_freep) char *req = NULL, *auth = NULL;
        struct curl_slist *hdrs = NULL;
        buf b = { 0 };
        char url[512];
        long status = 0, os_errno = 0;
        int r = -ENOMEM;

        if ((size_t) snprintf(url, sizeof url, "http://localhost%s", path) >= sizeof url)
                return -ENAMETOOLONG;
        if (body && json_dump_compact(body, &req) < 0)
                return -ENOMEM;
        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        if (add_header(&hdrs, "Accept: application/json") < 0 || add_header(&hdrs, "Expect:") < 0 ||
            (body && add_header(&hdrs, "Content-Type: application/json") < 0))
                goto out;
        if (bearer) {
                if (asprintf(&auth, "Authorization: Bearer %s", bearer) < 0) {
                        auth = NULL;
                        goto out;
                }
                if (add_header(&hdrs, auth) < 0)
                        goto out;
        }
        if (curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctx->socket) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TC_HTTP_TIMEOUT_MS) != CURLE_OK ||
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
                r = report_transport(ctx, cc, os_errno, b.too_big);
                goto out;
        }
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        tc_answer a = { .status = status };
        if (b.len > 0) {
                /* Any answer with a body is JSON from tokend; a body that is
                 * not is answered as a protocol error. */
                if (json_parse_object(b.data, b.len, TC_HTTP_MAX_ANSWER, ANSWER_MAX_DEPTH, &a.body, NULL) < 0) {
                        tc_error(ctx, 0, "the answer on %s (HTTP %ld) is not JSON; is this really tokend?",
                                 ctx->socket, status);
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

void tc_answer_done(tc_answer *a) {
        if (!a)
                return;
        json_decref(a->body);
        *a = (tc_answer){ 0 };
}

int tc_http_exit(int r) {
        return r == -ENOENT || r == -ECONNREFUSED || r == -ETIMEDOUT ? EXIT_UNREACHABLE : EXIT_REFUSED;
}

static const char *hint_for(const char *code, long status) {
        if (streq(code, "token_revoked") || streq(code, "token_expired"))
                return "log in again: tokenctl login";
        if (streq(code, "invalid_credentials"))
                return "check the user name and password";
        if (streq(code, "forbidden"))
                return "this needs root or a member of tokend's admin group ([Login] AdminGroup=)";
        if (streq(code, "too_many_requests"))
                return "wait and try again";
        if (status >= 500)
                return "see tokend's log: journalctl -u tokend";
        return NULL;
}

int tc_answer_fail(const tc_ctx *ctx, const tc_answer *a) {
        const char *code = a->body ? json_object_get_str(a->body, "error") : NULL;
        const char *msg = a->body ? json_object_get_str(a->body, "message") : NULL;
        const char *hint = hint_for(code ? code : "", a->status);

        if (!code)
                code = "unknown_error";
        tc_error(ctx, 0, "tokend refused: %s (%s, HTTP %ld)%s%s", msg ? msg : "no explanation given", code,
                 a->status, hint ? "; " : "", hint ? hint : "");
        return a->status == 400 && streq(code, "invalid_request") ? EXIT_USAGE : EXIT_REFUSED;
}

char *tc_http_escape(const char *s) {
        char *e = curl_easy_escape(NULL, s, 0);
        if (!e)
                return NULL;
        char *copy = strdup(e);
        curl_free(e);
        return copy;
}
