/* SPDX-License-Identifier: MIT */
/* The [Network] HTTPS listener as a front end (tokend-network.h). A
 * "generation" is one set of HTTP servers (one per listen socket) with the
 * TLS material they were started with; a reload that changes the files
 * starts a new generation on the same sockets and retires the old one on
 * a thread of its own: it stops accepting at once and finishes its
 * requests within RequestTimeout=, so no request in flight fails. */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tokend-http.h"
#include "tokend-keydir.h"
#include "tokend-listenfds.h"
#include "tokend-log.h"
#include "tokend-network.h"
#include "tokend-tlspeer.h"

#define TLS_FILE_MAX (1024U * 1024U) /* a certificate chain, a key, a CA bundle */

/* PEM files in sodium memory (keydir_read_*); NULL when not configured. */
typedef struct tls_files {
        char *cert, *key, *trust;
} tls_files;

typedef struct generation {
        http_server *http[TOKEND_LISTEN_MAX];
        size_t n;
        tls_files tls;
} generation;

typedef struct network_frontend {
        int fds[TOKEND_LISTEN_MAX];
        char names[TOKEND_LISTEN_MAX][TOKEND_LISTEN_WORD_MAX + 1];
        bool inherited[TOKEND_LISTEN_MAX]; /* passed by systemd (tokend-network.socket) */
        size_t n;
        char *listen;        /* Listen= as opened: a change needs a restart */
        generation *current;
        generation *retired; /* being stopped by retire_thread */
        pthread_t retire_thread;
        bool retiring;
        unsigned grace;
} network_frontend;

static void tls_files_done(tls_files *f) {
        keydir_passphrase_free(f->cert);
        keydir_passphrase_free(f->key);
        keydir_passphrase_free(f->trust);
        *f = (tls_files) { 0 };
}

static bool tls_files_equal(const tls_files *a, const tls_files *b) {
        return streq_ptr(a->cert, b->cert) && streq_ptr(a->key, b->key) && streq_ptr(a->trust, b->trust);
}

/* The certificate parses, the key is its key, the CA file holds a
 * certificate: said here, with the file name, rather than as a failed
 * TLS start later. */
static int tls_check(const tokend_config *c, const tls_files *f) {
        BIO *b = BIO_new_mem_buf(f->cert, -1);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        b = BIO_new_mem_buf(f->key, -1);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        int r = -EINVAL;

        if (!x)
                log_error("[Network] Certificate=%s: not a PEM certificate", c->network_certificate);
        else if (!k)
                log_error("[Network] PrivateKey=%s: not an unencrypted PEM private key", c->network_private_key);
        else if (X509_check_private_key(x, k) != 1)
                log_error("[Network] PrivateKey=%s is not the key of Certificate=%s", c->network_private_key,
                          c->network_certificate);
        else
                r = 0;
        if (r == 0 && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
                log_warning("[Network] Certificate=%s has expired: clients will refuse it", c->network_certificate);
        X509_free(x);
        EVP_PKEY_free(k);
        if (r == 0 && f->trust) {
                b = BIO_new_mem_buf(f->trust, -1);
                x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
                BIO_free(b);
                if (!x) {
                        log_error("[Network] ClientCA=%s: no PEM certificate in it", c->network_client_ca);
                        r = -EINVAL;
                }
                X509_free(x);
        }
        return r;
}

/* Read the TLS files c names (none: plain HTTP, *ret all NULL). The key
 * under the rules of a signing key file (owner, mode). Logs failures. */
static int tls_load(const tokend_config *c, tls_files *ret) {
        tls_files f = { 0 };
        _cleanup_(freep) char *why = NULL;
        int r;

        if (!c->network_certificate) {
                *ret = f;
                return 0;
        }
        if ((r = keydir_read_small_file(c->network_certificate, TLS_FILE_MAX, &f.cert)) < 0) {
                log_error("[Network] Certificate=%s: %s", c->network_certificate,
                          r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
                goto fail;
        }
        if ((r = keydir_read_private_file(c->network_private_key, geteuid(), TLS_FILE_MAX, &f.key, &why)) < 0) {
                log_error("[Network] PrivateKey=%s: %s", c->network_private_key,
                          why ? why : r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
                goto fail;
        }
        if (c->network_client_ca &&
            (r = keydir_read_small_file(c->network_client_ca, TLS_FILE_MAX, &f.trust)) < 0) {
                log_error("[Network] ClientCA=%s: %s", c->network_client_ca,
                          r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
                goto fail;
        }
        if ((r = tls_check(c, &f)) < 0)
                goto fail;
        *ret = f;
        return 0;
fail:
        tls_files_done(&f);
        return r;
}

/* The socket for Listen= word: the one systemd passed for its address
 * (taken out of l), else one opened here. */
static int open_listener(const char *word, listen_fds *l, int *ret, bool *ret_inherited) {
        struct sockaddr_storage sa, have;
        socklen_t len;
        int one = 1;

        if (tokend_listen_parse(word, &sa, &len) < 0)
                return -EINVAL; /* the configuration checked it */
        for (size_t i = 0; i < l->n_network; i++) {
                char name[TOKEND_LISTEN_WORD_MAX + 1];
                if (l->network[i] < 0 || listen_fd_address(l->network[i], name, &have) < 0 ||
                    !listen_sockaddr_equal(&sa, &have))
                        continue;
                *ret = l->network[i];
                l->network[i] = -EBADF;
                *ret_inherited = true;
                return 0;
        }
        _cleanup_(closep) int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* [::]:P means IPv6 only: IPv4 is listed on its own (0.0.0.0:P). */
        if (sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret = fd;
        *ret_inherited = false;
        fd = -EBADF;
        return 0;
}

/* The sockets systemd passed for [Network] obey the rule Listen= does
 * (tokend.conf(5)): plain HTTP only on a loopback address and with
 * AllowPlainLoopback=yes; read from the socket itself (getsockname). */
static int check_inherited(const tokend_config *c, const listen_fds *l) {
        for (size_t i = 0; i < l->n_network; i++) {
                char name[TOKEND_LISTEN_WORD_MAX + 1];
                struct sockaddr_storage sa;
                int r = listen_fd_address(l->network[i], name, &sa);
                if (r < 0) {
                        log_error("socket activation: fd %d (\"network\"): cannot read its address: %s",
                                  l->network[i], strerror(-r));
                        return r;
                }
                if (!c->network_certificate && !(c->network_allow_plain_loopback && tokend_sockaddr_is_loopback(&sa))) {
                        log_error("socket activation: fd %d listens on %s: plain HTTP only on loopback and with "
                                  "[Network] AllowPlainLoopback=yes, else Certificate= and PrivateKey=; refusing "
                                  "to start", l->network[i], name);
                        return -EINVAL;
                }
        }
        return 0;
}

/* After every Listen= word took its socket: one systemd passed that is
 * still there serves an address tokend.conf does not name. */
static int check_inherited_used(const tokend_config *c, const listen_fds *l) {
        for (size_t i = 0; i < l->n_network; i++) {
                char name[TOKEND_LISTEN_WORD_MAX + 1];
                if (l->network[i] < 0)
                        continue;
                (void) listen_fd_address(l->network[i], name, NULL);
                log_error("socket activation: fd %d listens on %s, which is not one of [Network] Listen=%s; "
                          "refusing to start", l->network[i], name, c->network_listen);
                return -EINVAL;
        }
        return 0;
}

static void generation_stop(generation *g, unsigned grace) {
        if (!g)
                return;
        for (size_t i = 0; i < g->n; i++)
                http_server_stop(g->http[i], grace);
        tls_files_done(&g->tls);
        free(g);
}

/* Servers on every socket of nf with tls (taken, also on failure). */
static int generation_start(tokend *t, network_frontend *nf, tls_files *tls, generation **ret) {
        generation *g = calloc(1, sizeof *g);
        if (!g) {
                tls_files_done(tls);
                return -ENOMEM;
        }
        g->tls = *tls;
        *tls = (tls_files) { 0 };
        tokend_rdlock(t);
        http_limits lim = tokend_http_limits(t->config);
        tokend_unlock(t);
        lim.name = "network";
        lim.peer_subject = g->tls.trust ? tls_peer_subject : NULL;
        lim.tls_cert = g->tls.cert;
        lim.tls_key = g->tls.key;
        lim.tls_trust = g->tls.trust;
        for (; g->n < nf->n; g->n++) {
                int r = http_server_start(t, t->login_workers, nf->fds[g->n], &lim, &g->http[g->n]);
                if (r < 0) {
                        log_error("cannot start the HTTP%s server on %s: %s", lim.tls_cert ? "S" : "",
                                  nf->names[g->n], strerror(-r));
                        generation_stop(g, 0);
                        return r;
                }
        }
        *ret = g;
        return 0;
}

static void network_stop(tokend *t _unused_, void *state, unsigned grace) {
        network_frontend *nf = state;
        if (!nf)
                return;
        if (nf->retiring)
                pthread_join(nf->retire_thread, NULL);
        generation_stop(nf->current, grace);
        for (size_t i = 0; i < nf->n; i++)
                close(nf->fds[i]);
        free(nf->listen);
        free(nf);
}

static int network_start(tokend *t, void **ret_state) {
        const tokend_config *c = t->config;
        tls_files tls = { 0 };
        int r;

        if (c->network_certificate && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
                log_error("this libmicrohttpd is built without TLS: cannot serve [Network] over HTTPS");
                return -EOPNOTSUPP;
        }
        network_frontend *nf = calloc(1, sizeof *nf);
        if (!nf || !(nf->listen = strdup(c->network_listen))) {
                free(nf);
                return -ENOMEM;
        }
        if ((r = check_inherited(c, &t->inherited)) < 0) {
                network_stop(t, nf, 0);
                return r;
        }
        for (const char *w = c->network_listen + strspn(c->network_listen, " \t"); *w; w += strspn(w, " \t")) {
                size_t l = strcspn(w, " \t");
                snprintf(nf->names[nf->n], sizeof nf->names[nf->n], "%.*s", (int) l, w);
                w += l;
                r = open_listener(nf->names[nf->n], &t->inherited, &nf->fds[nf->n], &nf->inherited[nf->n]);
                if (r < 0) {
                        log_error("[Network] Listen=%s: cannot listen: %s", nf->names[nf->n], strerror(-r));
                        network_stop(t, nf, 0);
                        return r;
                }
                nf->n++;
        }
        if ((r = check_inherited_used(c, &t->inherited)) < 0 || (r = tls_load(c, &tls)) < 0 ||
            (r = generation_start(t, nf, &tls, &nf->current)) < 0) {
                network_stop(t, nf, 0);
                return r;
        }
        t->inherited.n_network = 0; /* all taken */
        for (size_t i = 0; i < nf->n; i++)
                log_info("serving the API over %s on %s%s", c->network_certificate ? "HTTPS" : "plain HTTP (loopback)",
                         nf->names[i], nf->inherited[i] ? " (socket from systemd)" : "");
        *ret_state = nf;
        return 0;
}

static void *retire_main(void *data) {
        network_frontend *nf = data;
        generation_stop(nf->retired, nf->grace);
        return NULL;
}

/* SIGHUP: new TLS files → a new generation; the old one finishes its
 * requests on the retire thread. A file that does not load keeps the old. */
static void network_reload(tokend *t, void *state) {
        network_frontend *nf = state;
        tls_files tls = { 0 };
        generation *g = NULL;
        int r;

        tokend_rdlock(t);
        if (!streq(t->config->network_listen ?: "", nf->listen))
                log_notice("[Network] Listen= changes take effect at the next restart");
        unsigned grace = (unsigned) t->config->request_timeout;
        bool tls_wanted = t->config->network_certificate;
        r = tls_wanted ? tls_load(t->config, &tls) : 0;
        tokend_unlock(t);
        if (r < 0 || !tls_wanted || !nf->current->tls.cert) {
                if (r < 0)
                        log_error("[Network] keeping the running certificate");
                else if (tls_wanted != !!nf->current->tls.cert)
                        log_notice("[Network] switching between HTTP and HTTPS takes effect at the next restart");
                tls_files_done(&tls);
                return;
        }
        if (tls_files_equal(&tls, &nf->current->tls)) {
                tls_files_done(&tls);
                return;
        }
        if (nf->retiring) { /* the reload before: its old servers must be gone first */
                pthread_join(nf->retire_thread, NULL);
                nf->retiring = false;
        }
        if ((r = generation_start(t, nf, &tls, &g)) < 0) {
                log_error("[Network] keeping the running certificate");
                return;
        }
        nf->retired = nf->current;
        nf->current = g;
        nf->grace = grace;
        if (pthread_create(&nf->retire_thread, NULL, retire_main, nf) == 0)
                nf->retiring = true;
        else
                generation_stop(nf->retired, grace);
        log_info("[Network] serving the new certificate; the old one finishes its requests");
}

static bool network_wanted(const tokend *t) {
        return t->config->network_listen != NULL;
}

/* Not optional: a listener the administrator asked for that cannot start
 * stops tokend (rather than a fleet silently losing its issuer). Admin
 * operations need a kernel identity and are not served over TCP. */
const tokend_frontend_ops tokend_frontend_network = {
        .name = "network",
        .roles = TOKEND_ROLE_MASK(TOKEND_ROLE_ISSUER),
        .wanted = network_wanted,
        .start = network_start,
        .stop = network_stop,
        .reload = network_reload,
};
