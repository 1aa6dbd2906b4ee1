/* SPDX-License-Identifier: MIT */
/* What the endpoints outside tokend-http.c share (tokend-http-ext.h): the
 * application/x-www-form-urlencoded body of an OAuth request, split into
 * parameters that are decoded by libmicrohttpd (MHD_http_unescape) into a
 * private copy wiped on form_done(), and the helpers that fill a reply. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "tokend-http-ext.h"

#define FORM_MAX_PARAMS 32U

typedef struct form {
        char *buf; /* the decoded copy (may hold a password): wiped */
        size_t size;
        const char *name[FORM_MAX_PARAMS];
        const char *value[FORM_MAX_PARAMS];
        size_t n;
} form;

/* Split and decode body (len bytes; '+' is a space, %XX a byte). Returns 0,
 * -EBADMSG (a NUL byte or %00, more than FORM_MAX_PARAMS parameters),
 * -EEXIST (a parameter given twice, RFC 6749 §3.1: *ret_dup names it; it
 * points into f, valid until form_done: f stays filled, call form_done),
 * -ENOMEM. On the other failures f is empty. */
int form_parse(const char *body, size_t len, form *f, const char **ret_dup);
/* The value of name, or NULL when absent or empty (RFC 6749 §3.1: a
 * parameter without a value is treated as omitted). */
const char *form_get(const form *f, const char *name);
/* Wipe and free. Accepts an empty form. */
void form_done(form *f);

/* The token of an "Authorization: Bearer TOKEN" header (scheme matched
 * case-insensitively, spaces after it skipped), or NULL. */
const char *http_bearer_of(struct MHD_Connection *conn);
/* Whether the request's Content-Type is type (parameters after ';' allowed). */
bool http_content_type_is(struct MHD_Connection *conn, const char *type);
/* How often name occurs among the request's values of kind (an enum
 * MHD_ValueKind: MHD_HEADER_KIND, MHD_GET_ARGUMENT_KIND, …): 0, 1, more. */
unsigned http_value_count(struct MHD_Connection *conn, int kind, const char *name);

/* Add a header to the reply (value copied into its buffer). -ENOBUFS when
 * the reply's header space is full. */
int reply_header(http_reply *r, const char *name, const char *value);
/* status and the body j (reference taken; secret: wiped when sent).
 * -ENOMEM. */
int reply_json(http_reply *r, unsigned status, json_t *j, bool secret);
/* status and a malloc'ed body (taken) of content type ctype (static). */
void reply_body(http_reply *r, unsigned status, const char *ctype, char *body);
