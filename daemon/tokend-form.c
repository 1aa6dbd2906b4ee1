/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json-util.h"
#include "tokend-form.h"

void form_done(form *f) {
        erase_and_free_buf(f->buf, f->size);
        *f = (form) { 0 };
}

int form_parse(const char *body, size_t len, form *f, const char **ret_dup) {
        *f = (form) { 0 };
        if (memchr(body, 0, len))
                return -EBADMSG;
        f->size = len + 1;
        f->buf = malloc(f->size);
        if (!f->buf)
                return -ENOMEM;
        memcpy(f->buf, body, len);
        f->buf[len] = 0;
        for (char *p = f->buf; p < f->buf + len;) {
                char *end = p + strcspn(p, "&");
                char *next = *end ? end + 1 : end;
                *end = 0;
                if (*p) { /* "a&&b": empty pairs are skipped */
                        if (f->n == FORM_MAX_PARAMS)
                                goto bad;
                        char *eq = strchr(p, '=');
                        char *v = eq ? eq + 1 : end;
                        if (eq)
                                *eq = 0;
                        for (char *q = p; *q; q++)
                                if (*q == '+')
                                        *q = ' ';
                        for (char *q = v; *q; q++)
                                if (*q == '+')
                                        *q = ' ';
                        /* MHD_http_unescape decodes %XX in place and returns the
                         * length: shorter than strlen means a %00 inside. */
                        if (MHD_http_unescape(p) != strlen(p) || MHD_http_unescape(v) != strlen(v))
                                goto bad;
                        for (size_t i = 0; i < f->n; i++)
                                if (streq(f->name[i], p)) {
                                        *ret_dup = f->name[i];
                                        return -EEXIST; /* f stays filled: *ret_dup points into it */
                                }
                        f->name[f->n] = p;
                        f->value[f->n] = v;
                        f->n++;
                }
                p = next;
        }
        return 0;
bad:
        form_done(f);
        return -EBADMSG;
}

const char *form_get(const form *f, const char *name) {
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->name[i], name))
                        return *f->value[i] ? f->value[i] : NULL;
        return NULL;
}

const char *http_bearer_of(struct MHD_Connection *conn) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!a || strncasecmp(a, "Bearer ", 7) != 0)
                return NULL;
        a += 7;
        while (*a == ' ')
                a++;
        return *a ? a : NULL;
}

bool http_content_type_is(struct MHD_Connection *conn, const char *type) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        size_t l = strlen(type);
        if (!ct)
                return false;
        return strncasecmp(ct, type, l) == 0 && (ct[l] == 0 || ct[l] == ';' || ct[l] == ' ');
}

typedef struct header_count {
        const char *name;
        unsigned n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        header_count *c = cls;
        (void) kind, (void) value;
        if (key && strcasecmp(key, c->name) == 0)
                c->n++;
        return MHD_YES;
}

unsigned http_value_count(struct MHD_Connection *conn, int kind, const char *name) {
        header_count c = { .name = name };
        (void) MHD_get_connection_values(conn, (enum MHD_ValueKind) kind, count_header, &c);
        return c.n;
}

int reply_header(http_reply *r, const char *name, const char *value) {
        size_t l = strlen(value) + 1, i;
        for (i = 0; i < HTTP_REPLY_HEADERS && r->hdr_name[i]; i++)
                ;
        if (i == HTTP_REPLY_HEADERS || l > sizeof r->hdr_buf - r->hdr_used)
                return -ENOBUFS;
        char *v = r->hdr_buf + r->hdr_used;
        memcpy(v, value, l);
        r->hdr_used += l;
        r->hdr_name[i] = name;
        r->hdr_value[i] = v;
        return 0;
}

void reply_body(http_reply *r, unsigned status, const char *ctype, char *body) {
        if (r->secret)
                erase_and_free(r->body);
        else
                free(r->body);
        r->status = status;
        r->content_type = ctype;
        r->body = body;
        r->secret = false;
}

int reply_json(http_reply *r, unsigned status, json_t *j, bool secret) {
        char *s = NULL;
        int k = j ? td_json_dump_compact(j, &s) : -ENOMEM;
        json_decref(j);
        if (k < 0)
                return -ENOMEM;
        reply_body(r, status, "application/json", s);
        r->secret = secret;
        return 0;
}

void http_ext_done(http_ext_req *rq, http_reply *reply) {
        if (rq->job_free)
                rq->job_free(rq->job_data);
        rq->job_free = NULL;
        rq->job_data = NULL;
        reply_body(reply, 0, NULL, NULL);
}
