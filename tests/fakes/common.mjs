// Shared plumbing for the hand-written provider fakes (stytch.mjs, stack.mjs). Node 20+, no npm
// dependencies. NOT for production use: in-memory state, keys generated at start-up, test hooks.
//
// What lives here: command-line parsing, a movable clock, JWT signing/verification (RS256, ES256)
// with JWK export, random tokens, request-body reading, the test hooks both fakes have (outbox,
// request log, clock, key rotation) and the HTTP server that prints the one JSON "ready" line on
// stdout. Everything provider-specific is in the fake itself.

import { createServer } from 'node:http';
import crypto from 'node:crypto';
import { recordIssued } from './ledger.mjs';

// stdout carries exactly one JSON line (the ready line); all other output goes to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

// ---------------------------------------------------------------------------------------------
// Command line

/**
 * Parses `--name value` / `--name=value` flags. `spec` maps flag names (without `--`) to
 * `{ type: 'int' | 'string' | 'list' | 'flag', default, min?, max? }`: a `list` flag may be
 * repeated (its default applies only when it is never given; `--name=` alone makes it empty), a
 * `flag` takes no value and is `false` unless given. Unknown flags and bad values exit with 2.
 */
export function parseArgs(argv, spec, usageLine) {
  const usage = (message) => {
    if (message) console.error(`error: ${message}`);
    console.error(`usage: ${usageLine}`);
    process.exit(2);
  };
  const out = {};
  const given = new Set();
  for (const [name, s] of Object.entries(spec)) out[name] = s.type === 'flag' ? false : s.default;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') usage();
    if (!arg.startsWith('--')) usage(`unexpected argument ${arg}`);
    const [flag, inline] = arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const name = flag.slice(2);
    const s = spec[name];
    if (!s) usage(`unknown argument ${flag}`);
    if (s.type === 'flag') {
      if (inline !== undefined) usage(`${flag} takes no value`);
      out[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      i += 1;
      if (i >= argv.length) usage(`${flag} needs a value`);
      value = argv[i];
    }
    if (s.type === 'int') {
      const n = Number(value);
      if (!Number.isInteger(n) || (s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) {
        usage(`bad ${flag} ${JSON.stringify(value)}`);
      }
      out[name] = n;
    } else if (s.type === 'list') {
      // `--name=` (an empty value) gives an empty list.
      if (!given.has(name)) out[name] = [];
      given.add(name);
      if (value !== '') out[name].push(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Clock: real time plus an offset that tests move forward with POST /__test/clock.

export class Clock {
  constructor() {
    this.offsetMs = 0;
  }

  nowMs() {
    return Date.now() + this.offsetMs;
  }

  nowSec() {
    return Math.floor(this.nowMs() / 1000);
  }

  iso(ms = this.nowMs()) {
    // Stytch-style RFC 3339 timestamps without fractional seconds.
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  advance(seconds) {
    this.offsetMs += seconds * 1000;
  }
}

// ---------------------------------------------------------------------------------------------
// Random values

export const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** `bytes` random bytes as base64url (no padding). */
export function randomToken(bytes = 32) {
  return crypto.randomBytes(bytes).toString('base64url');
}

/** Lower-case alphanumeric string of `length` characters. */
export function randomAlnum(length) {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  const bytes = crypto.randomBytes(length);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

export const uuid = () => crypto.randomUUID();

export function sha256b64url(text) {
  return crypto.createHash('sha256').update(text, 'utf8').digest('base64url');
}

// ---------------------------------------------------------------------------------------------
// Keys and JWTs

/**
 * A fresh signing key: `{ kid, alg, privateKey, publicJwk }` for RS256 (RSA 2048) or ES256 (P-256).
 * The published JWK carries `use: "sig"` unless `publishUse` is false.
 */
export function newSigningKey(alg, kid, { publishUse = true } = {}) {
  let pair;
  if (alg === 'RS256') {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg === 'ES256') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  } else {
    throw new Error(`unsupported alg ${alg}`);
  }
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return {
    kid,
    alg,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicJwk: publishUse ? { ...jwk, kid, alg, use: 'sig' } : { ...jwk, kid, alg },
  };
}

export function signJwt(key, payload, extraHeader = {}) {
  const header = { alg: key.alg, typ: 'JWT', kid: key.kid, ...extraHeader };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = key.alg === 'ES256'
    ? crypto.sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
    : crypto.sign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${b64url(signature)}`;
}

/**
 * Checks the signature of `token` against `keys` (selected by `kid`). Returns `{ header, payload }`
 * or `null` when the token is malformed, names an unknown key, or the signature does not verify.
 * Claims (exp, iss, aud, …) are left to the caller.
 */
export function verifyJwtSignature(token, keys) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object') return null;
  const key = keys.find((k) => k.kid === header.kid && k.alg === header.alg);
  if (!key) return null;
  const input = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2], 'base64url');
  const ok = key.alg === 'ES256'
    ? crypto.verify('sha256', input, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)
    : crypto.verify('sha256', input, key.publicKey, signature);
  return ok ? { header, payload, key } : null;
}

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits)

export function totp(secret, nowMs, step = 0) {
  const counter = Math.floor(nowMs / 1000 / 30) + step;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac('sha1', secret).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

const BODY_LIMIT = 1024 * 1024;

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  recordIssued(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendText(res, status, text, headers = {}) {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Basic credentials of a request: `{ username, password }`, or `null` if absent/malformed. */
export function basicAuth(req) {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(h);
  if (!m) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/**
 * Starts the HTTP server on 127.0.0.1:`port` (0 = random) and, once listening, prints
 * `readyFields(baseUrl)` as the single JSON line on stdout. `handler(req, res, url)` may be async;
 * an exception becomes a 500 and is logged.
 */
export function serve({ port, name, handler, readyFields }) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    Promise.resolve()
      .then(() => holdIfStalled(url.pathname))
      .then(() => handler(req, res, url))
      .catch((err) => {
        console.error(`[${name}] internal error on ${req.method} ${url.pathname}:`, err);
        if (!res.headersSent) sendText(res, 500, 'internal error in the fake');
        else res.end();
      });
  });
  server.on('error', (err) => {
    console.error(`[${name}] cannot listen: ${err.code || ''} ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    const actual = server.address().port;
    const baseUrl = `http://127.0.0.1:${actual}`;
    process.stdout.write(`${JSON.stringify(readyFields(baseUrl, actual))}\n`);
    console.error(`[${name}] listening on ${baseUrl}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

// ---------------------------------------------------------------------------------------------
// Stalls: a provider that does not answer. `POST /__test/stall {path}` holds the next request to
// `path` (its full pathname) before the fake sees it, `GET /__test/stalled?path=` answers once
// one is held, and `POST /__test/release {path}` lets it go on.

const stalls = new Map(); // path -> { armed, release, watchers }

function holdIfStalled(path) {
  const stall = stalls.get(path);
  if (!stall || !stall.armed) return undefined;
  stall.armed = false;
  return new Promise((resolve) => {
    stall.release = resolve;
    stall.watchers.splice(0).forEach((watch) => watch());
  });
}

async function pathOf(req) {
  try {
    const path = JSON.parse((await readBody(req)).toString('utf8'))?.path;
    return typeof path === 'string' && path.startsWith('/') ? path : null;
  } catch {
    return null;
  }
}

const stallHooks = {
  'POST /__test/stall': async (req, res) => {
    const path = await pathOf(req);
    if (!path) return sendJson(res, 400, { error: 'body must be {"path": "/..."}' });
    stalls.set(path, { armed: true, release: null, watchers: [] });
    return sendJson(res, 200, {});
  },
  'GET /__test/stalled': (req, res, url) => {
    const stall = stalls.get(url.searchParams.get('path') ?? '');
    if (!stall) return sendJson(res, 404, { error: 'no stall armed on that path' });
    if (stall.release) return sendJson(res, 200, {});
    const timer = setTimeout(() => sendJson(res, 504, { error: 'no request held within 60 s' }), 60_000);
    stall.watchers.push(() => {
      clearTimeout(timer);
      sendJson(res, 200, {});
    });
    return undefined;
  },
  'POST /__test/release': async (req, res) => {
    const path = await pathOf(req);
    const stall = stalls.get(path ?? '');
    if (!stall?.release) return sendJson(res, 409, { error: 'no request held on that path' });
    stalls.delete(path);
    stall.release();
    return sendJson(res, 200, {});
  },
};

/** Test hook `POST /__test/clock` body: `{advance_seconds}` (a non-negative number). */
export function parseAdvance(body) {
  let parsed;
  try {
    parsed = JSON.parse(body.toString('utf8') || '{}');
  } catch {
    return null;
  }
  const s = parsed?.advance_seconds;
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) return null;
  return s;
}

/**
 * The handler for `/__test/...`: the hooks both fakes have — `GET /__test/outbox`,
 * `GET`/`DELETE /__test/requests`, `POST /__test/clock`, `POST /__test/rotate_keys` and the
 * stalls (`POST /__test/stall`, `GET /__test/stalled`, `POST /__test/release`) — plus the
 * fake's own `extra` ones, keyed `'METHOD /__test/path'` and called as `(req, res, url)`.
 * Anything else is a 404. `timestamp()` renders the clock's time for the clock hook's log line
 * and answer; `newKey()` makes the key that `rotate_keys` puts in front of `signingKeys`.
 */
export function testHooks({ name, clock, timestamp, outbox, requestLog, signingKeys, newKey, extra = {} }) {
  const hooks = new Map(Object.entries({
    'GET /__test/outbox': (req, res) => sendJson(res, 200, outbox),
    'GET /__test/requests': (req, res) => sendJson(res, 200, requestLog),
    'DELETE /__test/requests': (req, res) => {
      requestLog.length = 0;
      return sendJson(res, 200, {});
    },
    'POST /__test/clock': async (req, res) => {
      const s = parseAdvance(await readBody(req));
      if (s === null) return sendJson(res, 400, { error: 'body must be {"advance_seconds": N} with N >= 0' });
      clock.advance(s);
      console.error(`[${name}] clock advanced by ${s} s to ${timestamp()}`);
      return sendJson(res, 200, { now: timestamp(), now_ms: clock.nowMs() });
    },
    'POST /__test/rotate_keys': (req, res) => {
      const key = newKey();
      signingKeys.unshift(key);
      return sendJson(res, 200, { kid: key.kid, published: signingKeys.map((k) => k.kid) });
    },
    ...stallHooks,
    ...extra,
  }));
  return (req, res, url) => {
    const hook = hooks.get(`${req.method} ${url.pathname}`);
    if (!hook) return sendJson(res, 404, { error: `no test hook ${req.method} ${url.pathname}` });
    return hook(req, res, url);
  };
}
