/* SPDX-License-Identifier: MIT */
/* libFuzzer target: whatever a (hostile or broken) daemon could send back to
 * pam_jwt — the HTTP response parser, then the verdict reader on its body.
 * Invariant checked: only a 200 can ever come out as VALID, a body never
 * exceeds its cap, and tokend's message (for the log line) is safe text. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "pam_jwt-http.h"
#include "pam_jwt-verify.h"
#include "str-escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        jwt_http_response resp = {};
        jwt_verify_result res;

        (void) jwt_token_is_jws_shaped((const char *) data, size);
        if (jwt_http_parse_response((const char *) data, size, &resp) < 0)
                return 0;
        assert(resp.body_len <= JWT_HTTP_BODY_MAX);
        jwt_verify_parse_answer(resp.status, resp.body, resp.body_len, "alice", "sshd", &res);
        assert(res.verdict != JWT_VERDICT_VALID || resp.status == 200);
        assert(memchr(res.message, 0, sizeof res.message));
        assert(str_is_safe_text(res.message, strlen(res.message)));
        jwt_http_response_done(&resp);
        return 0;
}
