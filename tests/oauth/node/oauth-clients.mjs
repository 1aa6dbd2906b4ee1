// SPDX-License-Identifier: MIT
// Test-only: OAuth clients nobody here wrote, against tokend (tests/oauth/test_oauth_node.py).
//   node oauth-clients.mjs device ISSUER CLIENT_ID SCOPE
//     openid-client: discovery from ISSUER's metadata, then the device flow
//     (initiateDeviceAuthorization + pollDeviceAuthorizationGrant); prints one
//     JSON line {"step":"authorize",...} to be approved, then {"step":"tokens",...}.
//   node oauth-clients.mjs verify JWKS_URI ISSUER AUDIENCE TOKEN
//     jose: createRemoteJWKSet + jwtVerify; prints {"payload","protectedHeader"}.
// HTTPS trusts the test CA through NODE_EXTRA_CA_CERTS; a plain http:// issuer
// (loopback only) is allowed with openid-client's allowInsecureRequests.
import * as client from "openid-client";
import * as jose from "jose";

const [cmd, ...args] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

try {
  if (cmd === "device") {
    const [issuer, clientId, scope] = args;
    const opts = issuer.startsWith("http:") ? { execute: [client.allowInsecureRequests] } : undefined;
    const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), opts);
    const m = config.serverMetadata();
    const da = await client.initiateDeviceAuthorization(config, scope ? { scope } : {});
    out({ step: "authorize", issuer: m.issuer, device_authorization_endpoint: m.device_authorization_endpoint,
          user_code: da.user_code, verification_uri: da.verification_uri,
          verification_uri_complete: da.verification_uri_complete, interval: da.interval });
    const t = await client.pollDeviceAuthorizationGrant(config, da);
    out({ step: "tokens", access_token: t.access_token, refresh_token: t.refresh_token, token_type: t.token_type,
          expires_in: t.expires_in, device_id: t.device_id });
  } else if (cmd === "verify") {
    const [jwksUri, issuer, audience, token] = args;
    const JWKS = jose.createRemoteJWKSet(new URL(jwksUri));
    const { payload, protectedHeader } = await jose.jwtVerify(token, JWKS, { issuer, audience, typ: "at+jwt" });
    out({ payload, protectedHeader });
  } else {
    throw new Error("usage: device ISSUER CLIENT_ID [SCOPE] | verify JWKS_URI ISSUER AUDIENCE TOKEN");
  }
} catch (e) {
  out({ step: "error", error: String(e && e.code ? e.code + ": " + e.message : e), cause: String(e && e.cause) });
  process.exit(1);
}
