// The ledger of issued secrets, for the secret scan (tests/secret-scan): with
// TESSERA_EVIDENCE_DIR set, every token a provider hands out (tests/idp and the fakes) is
// appended to issued.txt there, one per line, so the scan can search what Tessera stored,
// printed and showed for each of them. Without the variable it does nothing.

import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const SECRET_FIELDS = new Set([
  'access_token', 'refresh_token', 'id_token', 'device_code',
  'session_token', 'session_jwt', 'intermediate_session_token', 'anon_refresh_token',
]);
const LEDGER = process.env.TESSERA_EVIDENCE_DIR
  ? join(process.env.TESSERA_EVIDENCE_DIR, 'issued.txt')
  : null;

/** Records the secrets in a JSON answer body (an object, or its text), at any depth. */
export function recordIssued(body) {
  if (!LEDGER || body == null) return;
  let value = body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    try { value = JSON.parse(body.toString()); } catch { return; }
  }
  const found = [];
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (SECRET_FIELDS.has(k) && typeof inner === 'string' && inner.length >= 16) found.push(inner);
        else walk(inner);
      }
    }
  };
  walk(value);
  if (found.length) appendFileSync(LEDGER, found.map((s) => `${s}\n`).join(''));
}
