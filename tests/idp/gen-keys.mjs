// Generates the committed, TEST-ONLY keys in ./keys. Run once: `node gen-keys.mjs [--force]`.
// These keys are public (they live in the repository) and must never protect anything real.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'keys');
const force = process.argv.includes('--force');
mkdirSync(dir, { recursive: true });

function write(name, contents) {
  const path = join(dir, name);
  if (existsSync(path) && !force) {
    console.error(`keep ${path} (use --force to regenerate)`);
    return;
  }
  writeFileSync(path, contents);
  console.error(`wrote ${path}`);
}

function rsa() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

// Provider signing keys: private JWK (what oidc-provider loads) + the same key as PKCS#8 PEM
// (what Rust tests use to forge tokens).
for (const name of ['a', 'b']) {
  const { privateKey } = rsa();
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `key-${name}`, alg: 'RS256', use: 'sig' };
  write(`signing-${name}.json`, `${JSON.stringify(jwk, null, 2)}\n`);
  write(`signing-${name}.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }));
}

// private_key_jwt client key: PKCS#8 PEM (client side) + public JWK (registered with the provider).
{
  const { privateKey, publicKey } = rsa();
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'client-pkjwt', alg: 'RS256', use: 'sig' };
  write('client-pkjwt.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }));
  write('client-pkjwt.pub.json', `${JSON.stringify(jwk, null, 2)}\n`);
}
