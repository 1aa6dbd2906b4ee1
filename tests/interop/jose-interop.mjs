// SPDX-License-Identifier: MIT
// Test-only driver for tests/interop/test_interop.py: the npm "jose"
// package's side of the interoperability checks. Every command prints one
// JSON document on stdout; a rejected token exits 1 with the jose error code
// on stderr, a usage error exits 2.
//
//   verify JWKS_FILE ALG [ISSUER AUDIENCE TYP] < token
//       createLocalJWKSet + jwtVerify with algorithms pinned to [ALG]
//       (and issuer/audience/typ when given) → {"payload": …, "header": …}
//   verify-jwk JWKS_FILE ALG < token
//       importJWK of the JWKS's single key + jwtVerify → same output
//   sign ALG [HEADER_ALG] < claims.json
//       generateKeyPair(ALG), round-trip the private key through
//       exportJWK/importJWK, SignJWT with header {alg: HEADER_ALG ?? ALG,
//       typ: "JWT", kid} → {"jwks": {"keys": [public JWK with kid, alg]},
//       "token": …}. HEADER_ALG lets a test sign RS256 with a key the JWKS
//       publishes as PS256 (an algorithm-confusion control).
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const RSA_ALGS = new Set(['RS256', 'PS256']);

function usage() {
        process.stderr.write('usage: jose-interop.mjs verify|verify-jwk|sign …\n');
        process.exit(2);
}

function readStdin() {
        return readFileSync(0, 'utf8');
}

async function verify(args, single) {
        if (args.length !== 2 && args.length !== 5)
                usage();
        const [jwksFile, alg, issuer, audience, typ] = args;
        const jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
        const token = readStdin().trim();
        let key;
        if (single) {
                if (jwks.keys.length !== 1)
                        usage();
                key = await jose.importJWK(jwks.keys[0], alg);
        } else {
                key = jose.createLocalJWKSet(jwks);
        }
        const options = { algorithms: [alg] };
        if (issuer !== undefined)
                Object.assign(options, { issuer, audience, typ });
        const { payload, protectedHeader } = await jose.jwtVerify(token, key, options);
        return { payload, header: protectedHeader };
}

async function sign(args) {
        if (args.length < 1 || args.length > 2)
                usage();
        const [alg, headerAlg = alg] = args;
        const claims = JSON.parse(readStdin());
        const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
        const pub = await jose.exportJWK(publicKey);
        pub.kid = await jose.calculateJwkThumbprint(pub);
        pub.alg = alg;
        pub.use = 'sig';
        // importJWK binds the key to headerAlg (WebCrypto keys carry their
        // algorithm); only RSA keys can be re-bound between RS256 and PS256.
        if (headerAlg !== alg && !(RSA_ALGS.has(alg) && RSA_ALGS.has(headerAlg)))
                usage();
        const priv = await jose.importJWK(await jose.exportJWK(privateKey), headerAlg);
        const token = await new jose.SignJWT(claims)
                .setProtectedHeader({ alg: headerAlg, typ: 'JWT', kid: pub.kid })
                .sign(priv);
        return { jwks: { keys: [pub] }, token };
}

const [cmd, ...args] = process.argv.slice(2);
let out;
try {
        if (cmd === 'verify')
                out = await verify(args, false);
        else if (cmd === 'verify-jwk')
                out = await verify(args, true);
        else if (cmd === 'sign')
                out = await sign(args);
        else
                usage();
} catch (e) {
        process.stderr.write(`${e.code ?? e.name}: ${e.message}\n`);
        process.exit(1);
}
process.stdout.write(JSON.stringify(out) + '\n');
