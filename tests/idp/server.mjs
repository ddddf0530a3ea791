// Tessera's local OpenID provider, for tests and for the demo. NOT for production use:
// fixed users and passwords, committed private keys, in-memory storage, test-only fault hooks.
//
//   node tests/idp/server.mjs [--port N] [--profile plain|rotating] [--access-ttl SECS]
//                             [--signing-keys a,b] [--test-hooks] [--demo]
//
// When listening, prints exactly one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr. See README.md next to this file.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

// oidc-provider prints notices through console.info; stdout is reserved for the JSON line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors } = await import('oidc-provider');

const HERE = dirname(fileURLToPath(import.meta.url));
const KEYS = join(HERE, 'keys');

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error(
    'usage: node server.mjs [--port N (0 = random)] [--profile plain|rotating] '
    + '[--access-ttl SECS] [--signing-keys a,b] [--test-hooks] [--demo]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      i += 1;
      if (i >= argv.length) usage(`${flag} needs a value`);
      return argv[i];
    };
    switch (flag) {
      case '--port': given.port = value(); break;
      case '--profile': given.profile = value(); break;
      case '--access-ttl': given.accessTtl = value(); break;
      case '--signing-keys': given.signingKeys = value(); break;
      case '--test-hooks': given.testHooks = true; break;
      case '--demo': given.demo = true; break;
      case '-h':
      case '--help': usage(); break;
      default: usage(`unknown argument ${arg}`);
    }
  }

  // --demo only changes defaults: rotating refresh tokens, 5-minute access tokens.
  const opts = {
    port: Number(given.port ?? 0),
    profile: given.profile ?? (given.demo ? 'rotating' : 'plain'),
    accessTtl: Number(given.accessTtl ?? (given.demo ? 300 : 3600)),
    signingKeys: (given.signingKeys ?? 'a').split(',').map((s) => s.trim()).filter(Boolean),
    testHooks: Boolean(given.testHooks),
    demo: Boolean(given.demo),
  };
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
  if (!['plain', 'rotating'].includes(opts.profile)) usage('--profile must be plain or rotating');
  if (!Number.isInteger(opts.accessTtl) || opts.accessTtl <= 0) usage('bad --access-ttl');
  if (!opts.signingKeys.length) usage('--signing-keys needs at least one key');
  for (const k of opts.signingKeys) if (!['a', 'b'].includes(k)) usage(`unknown signing key ${k}`);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------------------------
// Static data: keys, users, clients

const readJson = (name) => JSON.parse(readFileSync(join(KEYS, name), 'utf8'));

// The first key signs new tokens; all of them are published in the JWKS.
const signingJwks = { keys: opts.signingKeys.map((k) => readJson(`signing-${k}.json`)) };
const pkjwtPublicJwk = readJson('client-pkjwt.pub.json');

const API_RESOURCE = 'https://api.example.test';
const DEMO_PASSWORD = 'demo';

const USERS = {
  alice: {
    sub: 'alice',
    email: 'alice@example.com',
    email_verified: true,
    name: 'Alice Example',
    organizations: ['acme', 'globex'],
  },
  bob: {
    sub: 'bob',
    email: 'bob@example.com',
    email_verified: true,
    name: 'Bob Example',
    organizations: ['acme'],
  },
};

const NATIVE = {
  application_type: 'native',
  redirect_uris: ['dev.tessera:/callback', 'http://127.0.0.1/callback'],
  post_logout_redirect_uris: ['dev.tessera:/logout', 'http://127.0.0.1/logout'],
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
};

const clients = [
  { ...NATIVE, client_id: 'tessera-public', client_name: 'Tessera', token_endpoint_auth_method: 'none' },
  {
    ...NATIVE,
    client_id: 'tessera-basic',
    client_name: 'Tessera (client_secret_basic)',
    client_secret: 'basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...NATIVE,
    client_id: 'tessera-post',
    client_name: 'Tessera (client_secret_post)',
    client_secret: 'post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    ...NATIVE,
    client_id: 'tessera-pkjwt',
    client_name: 'Tessera (private_key_jwt)',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: { keys: [pkjwtPublicJwk] },
  },
];

// ---------------------------------------------------------------------------------------------
// HTML

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const CSS = `
  *{box-sizing:border-box}
  body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
    font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#eef1f5}
  main{width:340px;background:#fff;border-radius:10px;padding:28px 28px 20px;
    box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
  h1{font-size:20px;font-weight:600;margin:0 0 4px}
  .sub{color:#616e7c;margin:0 0 20px;font-size:13px}
  label{display:block;font-size:13px;font-weight:600;margin:12px 0 4px}
  input[type=text],input[type=password]{width:100%;height:38px;padding:0 10px;font-size:15px;
    border:1px solid #cbd2d9;border-radius:6px}
  input:focus{outline:2px solid #3f7ee8;outline-offset:-1px;border-color:transparent}
  button{width:100%;height:38px;margin-top:18px;border:0;border-radius:6px;font-size:15px;font-weight:600;
    color:#fff;background:#2f6fdb;cursor:pointer}
  button:hover{background:#255ec2}
  button.secondary{background:#fff;color:#52606d;border:1px solid #cbd2d9;margin-top:8px}
  .error{background:#fdecea;color:#a61b1b;border-radius:6px;padding:8px 10px;font-size:13px;margin:0 0 8px}
  .hint{color:#7b8794;font-size:12px;margin:16px 0 0;text-align:center}
  .hint a{color:#7b8794}
  code{font-size:22px;letter-spacing:2px}
  pre{white-space:pre-wrap;word-break:break-word;font-size:12px;background:#f5f7fa;padding:8px;border-radius:6px}
`;

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function loginPage({ uid, clientName, login = '', error }) {
  return page('Tessera local demo — sign in', `
<h1>Sign in</h1>
<p class="sub">to continue to <strong>${esc(clientName)}</strong></p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">Username</label>
  <input id="login" type="text" name="login" value="${esc(login)}" required ${login ? '' : 'autofocus'}>
  <label for="password">Password</label>
  <input id="password" type="password" name="password" required ${login ? 'autofocus' : ''}>
  <button type="submit">Sign in</button>
</form>
<p class="hint">Demo users: alice or bob, password demo<br>
<a href="/interaction/${esc(uid)}/abort">Cancel and return to the application</a></p>`);
}

// ---------------------------------------------------------------------------------------------
// Provider configuration

// Bind first (port 0 = random) so the issuer can carry the real port.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(opts.port, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients,
  jwks: signingJwks,
  cookies: { keys: ['tessera-test-idp-cookie-key-not-secret'] },

  async findAccount(_ctx, sub) {
    const user = USERS[sub];
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() { return { ...user }; },
    };
  },
  claims: {
    openid: ['sub', 'organizations'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  conformIdTokenClaims: false,

  // Refresh tokens: issued whenever the client may use the refresh_token grant and offline_access
  // was granted (see also the /auth middleware below, which keeps offline_access from being
  // dropped when the request has no prompt=consent).
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  rotateRefreshToken: opts.profile === 'rotating',

  ttl: {
    AccessToken: opts.accessTtl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
  },

  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      async userCodeInputSource(ctx, form, _out, err) {
        let msg = '<p class="sub">Enter the code shown on your device.</p>';
        if (err && (err.userCode || err.name === 'NoCodeError')) {
          msg = '<p class="error" role="alert">The code you entered is incorrect. Try again.</p>';
        } else if (err && err.name === 'AbortedError') {
          msg = '<p class="error" role="alert">The sign-in request was cancelled.</p>';
        } else if (err) {
          msg = '<p class="error" role="alert">There was an error processing your request.</p>';
        }
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — device sign in', `
<h1>Device sign in</h1>
${msg}
${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      async userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — confirm device', `
<h1>Confirm device</h1>
<p class="sub"><strong>${esc(client.clientName || client.clientId)}</strong> wants to sign in.
Check that your device shows this code:</p>
<p style="text-align:center"><code>${esc(userCode)}</code></p>
${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button class="secondary" type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Cancel</button>`);
      },
      async successSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — signed in', `
<h1>Signed in</h1>
<p class="sub">Your device is now signed in. You can close this page.</p>`);
      },
    },
    revocation: {
      enabled: true,
      // oidc-provider's default policy, written out: a client may revoke its own tokens; a public
      // client presenting someone else's token gets a silent no-op.
      async allowedPolicy(_ctx, client, token) {
        if (token.clientId !== client.clientId) {
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    introspection: {
      enabled: true,
      // Any client may introspect its own tokens, including the public one.
      async allowedPolicy(ctx, client, token) {
        return !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId);
      },
    },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — sign out', `
<h1>Sign out?</h1>
<p class="sub">Do you want to sign out of the Tessera local demo provider?</p>
${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button class="secondary" type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — signed out', `
<h1>Signed out</h1>
<p class="sub">You have been signed out. You can close this page.</p>`);
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(_ctx, _client, oneOf) {
        return oneOf || undefined;
      },
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceIndicator === API_RESOURCE) {
          return {
            scope: 'read write',
            audience: API_RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: opts.accessTtl,
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  },

  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Tessera local demo — error', `
<h1>Something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${esc(k)}</strong>: ${esc(v)}</pre>`).join('')}`);
  },
};

const provider = new Provider(issuer, configuration);

// ---------------------------------------------------------------------------------------------
// Event log (GET /__test/events with --test-hooks; always echoed to stderr)

const events = [];
function record(event, details) {
  const entry = { event, at: new Date().toISOString(), ...details };
  events.push(entry);
  if (events.length > 5000) events.shift();
  console.error(`[idp] ${JSON.stringify(entry)}`);
}

const tokenDetails = (token) => ({
  kind: token.kind,
  grant_id: token.grantId,
  client_id: token.clientId,
  account_id: token.accountId,
});

const errorDetails = (ctx, err) => ({
  error: err.error ?? err.message,
  error_name: err.name,
  error_description: err.error_description,
  error_detail: err.error_detail,
  path: ctx?.path,
  client_id: ctx?.oidc?.client?.clientId,
});

for (const name of [
  'grant.error', 'authorization.error', 'revocation.error', 'introspection.error', 'userinfo.error',
  'end_session.error', 'end_session_confirm.error', 'device_authorization.error', 'jwks.error',
  'discovery.error', 'server_error',
]) {
  provider.on(name, (ctx, err) => record(name, errorDetails(ctx, err)));
}
provider.on('grant.success', (ctx) => record('grant.success', {
  grant_type: ctx.oidc.params?.grant_type,
  client_id: ctx.oidc.client?.clientId,
}));
provider.on('grant.revoked', (ctx, grantId) => record('grant.revoked', {
  grant_id: grantId,
  path: ctx?.path,
  client_id: ctx?.oidc?.client?.clientId,
}));
for (const name of [
  'refresh_token.saved', 'refresh_token.consumed', 'refresh_token.destroyed',
  'authorization_code.consumed', 'device_code.consumed',
]) {
  provider.on(name, (token) => record(name, tokenDetails(token)));
}
provider.on('end_session.success', (ctx) => record('end_session.success', {
  client_id: ctx.oidc.client?.clientId,
}));

// ---------------------------------------------------------------------------------------------
// Middleware (provider.use inserts before oidc-provider's own router)

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new errors.InvalidRequest('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// Test hooks: one-shot faults per path, and the event log.
const sabotage = new Map();
const SABOTAGE_KINDS = new Set([
  'html', 'truncated', 'huge', 'wrong_content_type', 'slow', 'redirect', 'status500_json',
]);

if (opts.testHooks) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__test/sabotage' && ctx.method === 'POST') {
      let spec;
      try {
        spec = JSON.parse(await readBody(ctx.req));
      } catch {
        spec = undefined;
      }
      if (!spec || typeof spec.path !== 'string' || !SABOTAGE_KINDS.has(spec.kind)) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: `expected {"path":"/…","kind":one of ${[...SABOTAGE_KINDS].join('|')}}` };
        return;
      }
      sabotage.set(spec.path, spec.kind);
      record('test.sabotage_armed', { path: spec.path, kind: spec.kind });
      ctx.body = { armed: spec };
      return;
    }
    if (ctx.path === '/__test/events') {
      if (ctx.method === 'GET') {
        ctx.body = events;
        return;
      }
      if (ctx.method === 'DELETE') {
        events.length = 0;
        ctx.status = 204;
        return;
      }
    }

    const kind = sabotage.get(ctx.path);
    if (!kind) return next();
    sabotage.delete(ctx.path);
    record('test.sabotage_fired', { path: ctx.path, kind });
    ctx.set('Cache-Control', 'no-store');

    switch (kind) {
      case 'html':
        ctx.status = 500;
        ctx.type = 'text/html; charset=utf-8';
        ctx.body = '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>'
          + '<body><h1>Internal Server Error</h1><p>The upstream proxy failed.</p></body></html>';
        return;
      case 'truncated':
        ctx.status = 200;
        ctx.type = 'application/json';
        ctx.body = '{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln","token_type":"Bea';
        return;
      case 'huge': {
        const size = 2 * 1024 * 1024;
        const head = '{"access_token":"huge","token_type":"Bearer","expires_in":3600,"padding":"';
        const tail = '"}';
        ctx.status = 200;
        ctx.type = 'application/json';
        ctx.body = head + 'x'.repeat(size - head.length - tail.length) + tail;
        return;
      }
      case 'wrong_content_type':
        ctx.status = 200;
        ctx.type = 'text/plain; charset=utf-8';
        ctx.body = JSON.stringify({
          access_token: 'not-a-real-token',
          token_type: 'Bearer',
          expires_in: 3600,
          refresh_token: 'not-a-real-refresh-token',
          scope: 'openid offline_access',
        });
        return;
      case 'slow':
        await sleep(40_000);
        return next();
      case 'redirect':
        ctx.status = 302;
        ctx.set('Location', 'http://127.0.0.1:1/elsewhere');
        ctx.body = '';
        return;
      case 'status500_json':
        ctx.status = 500;
        ctx.body = { error: 'server_error' };
        return;
      default:
        return next();
    }
  });
}

// offline_access is silently removed from an authorization request unless it carries
// prompt=consent (OpenID Connect Core 11). Real providers (Auth0, Logto, Stitch) issue refresh
// tokens without it, so an authorization request asking for offline_access gets `consent` added
// to its prompt here. Native clients are always sent through the consent prompt anyway, which the
// interaction below grants automatically, so nothing changes for the user.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/auth') {
    const query = new URLSearchParams(ctx.querystring);
    const scopes = (query.get('scope') ?? '').split(' ');
    const prompts = (query.get('prompt') ?? '').split(' ').filter(Boolean);
    if (scopes.includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
      query.set('prompt', [...prompts, 'consent'].join(' '));
      ctx.querystring = query.toString();
    }
  }
  return next();
});

// Interactions: our own login page; consent is granted automatically.
const INTERACTION = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/;

async function autoConsent(ctx, details) {
  const { prompt, params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  grant ??= new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, {
    mergeWithLastSubmission: true,
  });
}

provider.use(async (ctx, next) => {
  const match = INTERACTION.exec(ctx.path);
  if (!match) return next();
  const [, uid, action] = match;
  ctx.set('Cache-Control', 'no-store');

  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Tessera local demo — error', `
<h1>This sign-in request has expired</h1>
<p class="sub">Go back to the application and start again.</p>
<pre>${esc(err.message)}</pre>`);
    return undefined;
  }
  if (details.uid !== uid) {
    ctx.status = 400;
    ctx.body = 'interaction mismatch';
    return undefined;
  }
  ctx.respond = false; // interactionFinished / our own writes below end the response

  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName || details.params.client_id;
  const send = (status, html) => {
    ctx.res.statusCode = status;
    ctx.res.setHeader('Content-Type', 'text/html; charset=utf-8');
    ctx.res.setHeader('Cache-Control', 'no-store');
    ctx.res.end(html);
  };

  if (action === 'abort' && ctx.method === 'GET') {
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return undefined;
  }

  if (action === 'login' && ctx.method === 'POST') {
    const form = new URLSearchParams(await readBody(ctx.req));
    const login = (form.get('login') ?? '').trim();
    const password = form.get('password') ?? '';
    if (!USERS[login] || password !== DEMO_PASSWORD) {
      send(200, loginPage({ uid, clientName, login, error: 'Wrong username or password.' }));
      return undefined;
    }
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: login },
    }, { mergeWithLastSubmission: false });
    return undefined;
  }

  if (!action && ctx.method === 'GET') {
    if (details.prompt.name === 'login') {
      send(200, loginPage({ uid, clientName, login: details.params.login_hint ?? '' }));
      return undefined;
    }
    if (details.prompt.name === 'consent') {
      await autoConsent(ctx, details);
      return undefined;
    }
    send(400, page('Tessera local demo — error', `<h1>Unsupported prompt</h1><pre>${esc(details.prompt.name)}</pre>`));
    return undefined;
  }

  ctx.respond = true;
  ctx.status = 405;
  ctx.body = 'method not allowed';
  return undefined;
});

// ---------------------------------------------------------------------------------------------
// Serve

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
console.error(`[idp] listening on ${issuer} profile=${opts.profile} access-ttl=${opts.accessTtl}s `
  + `signing-keys=${opts.signingKeys.join(',')}${opts.testHooks ? ' test-hooks' : ''}${opts.demo ? ' demo' : ''}`);
if (opts.demo) {
  console.error(`[idp] demo users: alice / bob, password "${DEMO_PASSWORD}"; public client id tessera-public`);
}

const shutdown = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
