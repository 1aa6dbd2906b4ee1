/* SPDX-License-Identifier: MIT */
/* The RFC 8628 device grant's endpoints (http_ext_route handlers,
 * tokend-http-routes.c); the device_code grant of the token endpoint is in
 * tokend-oauth.c, the pending authorizations in tokend-device-grants.h. */
#pragma once

#include "tokend-http-ext.h"

/* POST /oauth2/device_authorization: form client_id (any name, shown to the
 * approver), scope (audiences), device_name, device_key → device_code,
 * user_code, verification_uri(_complete), expires_in, interval. */
int device_handle_authorization(http_ext_req *rq, http_reply *r);
/* GET/POST /device: the approval page (HTML). */
int device_handle_page(http_ext_req *rq, http_reply *r);
/* POST /api/device/approve: JSON {user_code, action: approve|deny} with the
 * approver's Authorization: Bearer token (tokenctl device approve). */
int device_handle_approve_api(http_ext_req *rq, http_reply *r);
