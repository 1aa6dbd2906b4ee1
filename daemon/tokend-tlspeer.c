/* SPDX-License-Identifier: MIT */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "tokend-tlspeer.h"

int tls_peer_subject(struct MHD_Connection *conn, char *buf, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_typed_vdata_st purpose = { .type = GNUTLS_DT_KEY_PURPOSE_OID,
                                          .data = (unsigned char *) GNUTLS_KP_TLS_WWW_CLIENT };
        gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t dn = { 0 };
        unsigned status = 1, n = 0;
        int ok = 0;

        if (!ci || !ci->tls_session || size == 0)
                return 0;
        gnutls_session_t s = (gnutls_session_t) ci->tls_session;
        /* The chain against ClientCA=, for TLS client authentication;
         * no certificate at all is an error here too (status stays 1). */
        if (gnutls_certificate_verify_peers(s, &purpose, 1, &status) < 0 || status != 0)
                return 0;
        const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
        if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
                return 0;
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
            gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 && dn.size > 0 && dn.size < size &&
            !memchr(dn.data, 0, dn.size)) {
                memcpy(buf, dn.data, dn.size);
                buf[dn.size] = 0;
                ok = 1;
        }
        gnutls_free(dn.data);
        gnutls_x509_crt_deinit(crt);
        return ok;
}
