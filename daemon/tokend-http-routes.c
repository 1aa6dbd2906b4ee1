/* SPDX-License-Identifier: MIT */
/* Every endpoint tokend-http.c serves from outside itself (tokend-http-ext.h). */
#include "macro.h"
#include "tokend-apidocs.h"
#include "tokend-device.h"
#include "tokend-http-ext.h"
#include "tokend-oauth.h"

const http_ext_route http_ext_routes[] = {
        { "/.well-known/oauth-authorization-server", "GET", oauth_handle_metadata },
        { "/.well-known/openid-configuration", "GET", oauth_handle_openid_configuration },
        { "/oauth2/token", "POST", oauth_handle_token },
        { "/oauth2/introspect", "POST", oauth_handle_introspect },
        { "/oauth2/revoke", "POST", oauth_handle_revoke },
        { "/oauth2/device_authorization", "POST", device_handle_authorization },
        { "/device", "GET", device_handle_page },
        { "/device", "POST", device_handle_page },
        { "/api/device/approve", "POST", device_handle_approve_api },
        { "/api/docs", "GET", apidocs_handle },
        { "/api/docs/start.js", "GET", apidocs_handle },
        { "/api/docs/swagger-ui-bundle.js", "GET", apidocs_handle },
        { "/api/docs/swagger-ui.css", "GET", apidocs_handle },
};
const size_t http_ext_n_routes = ELEMENTSOF(http_ext_routes);
