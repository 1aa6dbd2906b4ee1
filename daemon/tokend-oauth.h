/* SPDX-License-Identifier: MIT */
/* The OAuth 2.0 endpoints' shared pieces (tokend-oauth.c): RFC 6749 §5.2
 * error answers, the form of a request, the issuer's base URL. The
 * endpoints themselves are entries of http_ext_routes[] (tokend-http-ext.h). */
#pragma once

#include <stdbool.h>

#include "tokend-form.h"
#include "tokend-http-ext.h"
#include "tokend-service.h"

#define OAUTH_FORM_MAX 16384U    /* bytes of a form: far above any real request */
#define OAUTH_CLIENT_ID_MAX 64U
#define OAUTH_URL_MAX 512U

/* {"error":code,"error_description":…} with status; 401 adds
 * WWW-Authenticate. 0 or -ENOMEM. */
int oauth_error(http_reply *r, unsigned status, const char *code, const char *fmt, ...) _printf_(4, 5);
/* The §5.2 error for a failed service call (scope_asked: TD_FORBIDDEN is
 * invalid_scope rather than unauthorized_client). 0 or -ENOMEM. */
int oauth_error_of(http_reply *r, const td_status *st, bool scope_asked);
/* A token answer (§5.1, no-store) from c/st/tok; tok is released. */
int oauth_token_answer(http_reply *r, td_code c, const td_status *st, td_tokens *tok, bool scope_asked);
/* Check the content type and size, parse the form into *f. 0: parsed (the
 * caller form_done()s f); 1: an error reply is filled; -ENOMEM. */
int oauth_read_form(http_ext_req *rq, http_reply *r, form *f);
/* The client_id of the request, from the form or HTTP Basic (RFC 6749
 * §2.3.1, URL-encoded id and an empty secret: tokend's clients are public,
 * RFC 6749 §2.1). Writes *ret (NULL: none) into buf and returns 0, or
 * fills the error reply and returns 1 (-ENOMEM). */
int oauth_client_id(http_ext_req *rq, const form *f, http_reply *r, char buf[static OAUTH_CLIENT_ID_MAX + 1],
                    const char **ret);
/* Where the endpoints are: the issuer when it is an http(s) URL, else
 * http://localhost (the Unix socket), without a trailing slash. */
void oauth_base_url(tokend *t, char buf[static OAUTH_URL_MAX]);

/* The endpoints (http_ext_route handlers, tokend-http-routes.c). */
int oauth_handle_metadata(http_ext_req *rq, http_reply *r);
int oauth_handle_openid_configuration(http_ext_req *rq, http_reply *r);
int oauth_handle_token(http_ext_req *rq, http_reply *r);
int oauth_handle_introspect(http_ext_req *rq, http_reply *r);
int oauth_handle_revoke(http_ext_req *rq, http_reply *r);
