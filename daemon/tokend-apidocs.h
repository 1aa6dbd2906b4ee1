/* SPDX-License-Identifier: MIT */
/* The API explorer (tokend-apidocs.c): GET /api/docs and its files, when
 * [API] EnableDocs=yes (an http_ext_route handler, tokend-http-routes.c). */
#pragma once

#include "tokend-http-ext.h"

/* /api/docs (the page), /api/docs/start.js (tokend's own start script),
 * /api/docs/swagger-ui-bundle.js and /api/docs/swagger-ui.css (from [API]
 * DocsDirectory=). 404 (the socket API's error) when disabled or missing. */
int apidocs_handle(http_ext_req *rq, http_reply *r);
