/* SPDX-License-Identifier: MIT */
/* The OpenAPI 3 document of the socket API, served at GET /api when
 * [API] EnableDocs=yes. Generated at build time from daemon/openapi.json. */
#pragma once

extern const char tokend_openapi_json[];
