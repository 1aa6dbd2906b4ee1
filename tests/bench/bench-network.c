/* SPDX-License-Identifier: MIT */
/* bench-network: tokend's verify and password login over HTTPS (the
 * [Network] listener) beside the same requests on the Unix socket, with
 * libcurl, one client, sequential requests:
 *   socket       one kept-alive connection on the Unix socket
 *   https-keep   one kept-alive TLS connection
 *   https-new    a new TCP connection and TLS handshake per request
 * Prints requests/s and p50/p99 latency per mode and operation, and the
 * TLS handshake cost (https-new p50 - https-keep p50). A program, not a
 * test: tests/bench/run-bench-network.sh starts the daemon (PAM service
 * pam_permit, so login measures tokend, not a password hash).
 *   bench-network --socket PATH --url https://127.0.0.1:PORT --ca-file F
 *                 [--user U] [--seconds S] */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 200000U
#define BODY_MAX (64U * 1024U)

typedef struct body {
        char data[BODY_MAX];
        size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *userdata) {
        body *b = userdata;
        size_t k = size * n;
        if (k > sizeof b->data - 1 - b->len)
                return 0;
        memcpy(b->data + b->len, p, k);
        b->len += k;
        b->data[b->len] = 0;
        return k;
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct target {
        const char *socket; /* NULL: HTTPS */
        const char *base;   /* "http://localhost" or the https URL */
        const char *ca_file;
        bool fresh;         /* a new connection per request */
} target;

/* POST path with json; the status, or -1. */
static long post(CURL *c, const target *t, const char *path, const char *json, body *b) {
        char url[512];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        snprintf(url, sizeof url, "%s%s", t->base, path);
        b->len = 0;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, t->fresh ? 1L : 0L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, t->fresh ? 1L : 0L);
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(h);
        long status = -1;
        if (cc == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        else
                fprintf(stderr, "bench-network: %s: %s\n", url, curl_easy_strerror(cc));
        return status;
}

static CURL *client(const target *t) {
        CURL *c = curl_easy_init();
        if (!c)
                return NULL;
        if (t->socket)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, t->socket);
        if (t->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        return c;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Run op for seconds; print one line; returns p50 in ms (or -1). */
static double run(const char *name, const char *op, const target *t, const char *path, const char *json,
                  double seconds) {
        static double lat[MAX_SAMPLES];
        body *b = malloc(sizeof *b);
        CURL *c = client(t);
        size_t n = 0, errors = 0;
        if (!b || !c) {
                free(b);
                return -1;
        }
        double start = now();
        while (now() - start < seconds && n < MAX_SAMPLES) {
                double t0 = now();
                long st = post(c, t, path, json, b);
                lat[n++] = (now() - t0) * 1e3;
                if (st != 200)
                        errors++;
        }
        double total = now() - start;
        qsort(lat, n, sizeof lat[0], cmp);
        double p50 = n ? lat[n / 2] : -1, p99 = n ? lat[n * 99 / 100] : -1;
        printf("%-7s %-11s %8.0f req/s   p50 %7.3f ms   p99 %7.3f ms   (%zu requests, %zu not 200)\n", op, name,
               (double) n / total, p50, p99, n, errors);
        curl_easy_cleanup(c);
        free(b);
        return errors ? -1 : p50;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' }, { "url", required_argument, NULL, 'u' },
                { "ca-file", required_argument, NULL, 'c' }, { "user", required_argument, NULL, 'U' },
                { "seconds", required_argument, NULL, 'S' }, {},
        };
        const char *sock = NULL, *url = NULL, *ca = NULL, *user = "root";
        double seconds = 3;
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
                switch (o) {
                case 's': sock = optarg; break;
                case 'u': url = optarg; break;
                case 'c': ca = optarg; break;
                case 'U': user = optarg; break;
                case 'S': seconds = atof(optarg); break;
                default: return 2;
                }
        if (!sock || !url || !ca || seconds <= 0) {
                fputs("usage: bench-network --socket PATH --url https://HOST:PORT --ca-file F [--user U] "
                      "[--seconds S]\n", stderr);
                return 2;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        target local = { .socket = sock, .base = "http://localhost" };
        target keep = { .base = url, .ca_file = ca }, fresh = { .base = url, .ca_file = ca, .fresh = true };

        /* A token to verify: peer login on the socket. */
        body *b = malloc(sizeof *b);
        CURL *c = client(&local);
        if (!b || !c || post(c, &local, "/api/auth/token", "{}", b) != 200) {
                fprintf(stderr, "bench-network: no token from the socket's peer login\n");
                return 1;
        }
        json_t *j = json_loadb(b->data, b->len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        char verify[4096], login[512];
        if (!tok || (size_t) snprintf(verify, sizeof verify, "{\"token\":\"%s\"}", tok) >= sizeof verify)
                return 1;
        snprintf(login, sizeof login, "{\"username\":\"%s\",\"password\":\"bench\"}", user);
        curl_easy_cleanup(c);
        json_decref(j);
        free(b);

        double vk = run("socket", "verify", &local, "/api/auth/verify", verify, seconds);
        double hk = run("https-keep", "verify", &keep, "/api/auth/verify", verify, seconds);
        double hn = run("https-new", "verify", &fresh, "/api/auth/verify", verify, seconds);
        run("socket", "login", &local, "/api/auth/login", login, seconds);
        run("https-keep", "login", &keep, "/api/auth/login", login, seconds);
        run("https-new", "login", &fresh, "/api/auth/login", login, seconds);
        if (vk > 0 && hk > 0 && hn > 0)
                printf("TLS: a new connection (TCP + handshake) costs %.3f ms; verify over kept-alive TLS is "
                       "%.2fx the socket's p50\n", hn - hk, hk / vk);
        curl_global_cleanup();
        return 0;
}
