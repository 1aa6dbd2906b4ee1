/* SPDX-License-Identifier: MIT */
/* The verified client certificate of a TLS connection of the [Network]
 * listener ([Network] ClientCA=): libmicrohttpd asks GnuTLS to request one
 * (optional) and trusts ClientCA='s certificates; here the chain is
 * verified for TLS client authentication and its subject read. */
#pragma once

#include <microhttpd.h>
#include <stddef.h>

#define TLS_SUBJECT_MAX 256U

/* 1 and the certificate's subject (RFC 4514, NUL-terminated, cut to
 * size) in buf when conn's client presented a certificate that verifies
 * against the trusted CAs for clientAuth; 0 when it presented none or one
 * that does not verify (or the subject does not fit). Never fails open. */
int tls_peer_subject(struct MHD_Connection *conn, char *buf, size_t size);
