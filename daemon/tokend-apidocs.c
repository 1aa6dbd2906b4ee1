/* SPDX-License-Identifier: MIT */
/* GET /api/docs: an interactive explorer of the OpenAPI document (GET /api)
 * when [API] EnableDocs=yes — Swagger UI (the npm package swagger-ui-dist,
 * Apache-2.0), whose two files tokend serves from [API] DocsDirectory=.
 * The page and its start script are tokend's own; the CSP allows scripts
 * and styles from this origin only, no inline script, no framing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "tokend-apidocs.h"
#include "tokend-form.h"
#include "tokend.h"

#define ASSET_MAX (16U * 1024U * 1024U)
#define DOCS_CSP                                                                                              \
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "    \
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

static const char page_html[] =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>tokend API</title>\n<link rel=\"stylesheet\" href=\"/api/docs/swagger-ui.css\">\n</head>\n"
        "<body>\n<div id=\"swagger-ui\"></div>\n<script src=\"/api/docs/swagger-ui-bundle.js\"></script>\n"
        "<script src=\"/api/docs/start.js\"></script>\n</body>\n</html>\n";

/* The explorer talks to the server it was loaded from (the document's
 * servers entry names the Unix socket, which a browser cannot reach). */
static const char start_js[] =
        "/* tokend: start Swagger UI on this server's OpenAPI document (GET /api). */\n"
        "window.addEventListener(\"load\", function () {\n"
        "  fetch(\"/api\").then(function (r) { return r.json(); }).then(function (spec) {\n"
        "    spec.servers = [{ url: window.location.origin, description: \"this tokend\" }];\n"
        "    window.ui = SwaggerUIBundle({ spec: spec, dom_id: \"#swagger-ui\", deepLinking: false,\n"
        "      validatorUrl: null });\n"
        "  });\n"
        "});\n";

static void docs_headers(http_reply *r) {
        (void) reply_header(r, "Content-Security-Policy", DOCS_CSP);
        (void) reply_header(r, "X-Frame-Options", "DENY");
        (void) reply_header(r, "X-Content-Type-Options", "nosniff");
        (void) reply_header(r, "Referrer-Policy", "no-referrer");
}

static int not_found(http_reply *r, const char *why) {
        r->st.code = TD_NOT_FOUND;
        snprintf(r->st.message, sizeof r->st.message, "%s", why);
        return HTTP_EXT_DONE;
}

static int serve_static(http_reply *r, const char *body, const char *ctype) {
        char *b = strdup(body);
        if (!b)
                return -ENOMEM;
        reply_body(r, 200, ctype, b);
        docs_headers(r);
        return HTTP_EXT_DONE;
}

/* One file of DocsDirectory= (a fixed name: nothing of the URL is a path). */
static int serve_file(http_ext_req *rq, http_reply *r, const char *name, const char *ctype) {
        char path[4096];
        struct stat st;

        tokend_rdlock(rq->t);
        int n = snprintf(path, sizeof path, "%s/%s", rq->t->config->docs_directory, name);
        tokend_unlock(rq->t);
        if (n < 0 || (size_t) n >= sizeof path)
                return not_found(r, "[API] DocsDirectory= is too long");
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
            (uint64_t) st.st_size > ASSET_MAX) {
                snprintf(r->log_message, sizeof r->log_message, "API explorer file %.80s: %s", path,
                         fd < 0 ? strerror(errno) : "not a regular file of at most 16 MiB");
                return not_found(r, "the API explorer's files are not installed ([API] DocsDirectory=)");
        }
        char *b = malloc((size_t) st.st_size + 1);
        if (!b)
                return -ENOMEM;
        ssize_t k = read(fd, b, (size_t) st.st_size);
        if (k != st.st_size || memchr(b, 0, (size_t) k)) {
                free(b);
                return not_found(r, "the API explorer's files are not readable ([API] DocsDirectory=)");
        }
        b[k] = 0;
        reply_body(r, 200, ctype, b);
        docs_headers(r);
        return HTTP_EXT_DONE;
}

int apidocs_handle(http_ext_req *rq, http_reply *r) {
        if (!rq->enable_docs)
                return not_found(r, "the API explorer is disabled ([API] EnableDocs=no)");
        if (streq(rq->url, "/api/docs"))
                return serve_static(r, page_html, "text/html; charset=utf-8");
        if (streq(rq->url, "/api/docs/start.js"))
                return serve_static(r, start_js, "text/javascript; charset=utf-8");
        if (streq(rq->url, "/api/docs/swagger-ui-bundle.js"))
                return serve_file(rq, r, "swagger-ui-bundle.js", "text/javascript; charset=utf-8");
        return serve_file(rq, r, "swagger-ui.css", "text/css; charset=utf-8");
}
