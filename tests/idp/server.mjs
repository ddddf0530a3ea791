// Tessera's local OpenID provider, for tests and for the demo. NOT for production use:
// fixed users and passwords, committed private keys, in-memory storage, test-only fault hooks.
//
//   node tests/idp/server.mjs [--flavor generic|auth0|logto|stitch] [--port N]
//                             [--profile plain|rotating] [--access-ttl SECS]
//                             [--signing-keys a,b] [--test-hooks] [--demo]
//
// --flavor makes the same oidc-provider behave like Auth0, Logto or Stitch SSO (routes, issuer
// shape, extra parameters, organizations, claims, refresh-token rules); see README.md.
//
// When listening, prints exactly one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT,"flavor":"generic","discovery":"…"}
// Everything else goes to stderr. See README.md next to this file.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import {
  createHash, createPrivateKey, createPublicKey, sign as signData, verify as verifySignature,
} from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

// oidc-provider prints notices through console.info; stdout is reserved for the JSON line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors } = await import('oidc-provider');
// Internal registry of oidc-provider (grant handlers); the package has no `exports` map, so the
// deep import works. Pinned to 9.13.3 by package-lock.json.
const { default: internals } = await import('oidc-provider/lib/helpers/weak_cache.js');

const { recordIssued } = await import('../fakes/ledger.mjs');
const HERE = dirname(fileURLToPath(import.meta.url));
const KEYS = join(HERE, 'keys');

// ---------------------------------------------------------------------------------------------
// Command line

const FLAVORS = ['generic', 'auth0', 'logto', 'stitch'];

// Access-token lifetime when --access-ttl is not given (the providers' own defaults).
const DEFAULT_ACCESS_TTL = {
  generic: 3600, auth0: 86400, logto: 3600, stitch: 900,
};

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error(
    'usage: node server.mjs [--flavor generic|auth0|logto|stitch] [--port N (0 = random)] '
    + '[--profile plain|rotating] [--access-ttl SECS] [--signing-keys a,b] [--test-hooks] [--demo]',
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
      case '--flavor': given.flavor = value(); break;
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

  const flavor = given.flavor ?? 'generic';
  if (!FLAVORS.includes(flavor)) usage(`--flavor must be one of ${FLAVORS.join('|')}`);
  // Logto rotates refresh tokens of public clients by default; Stitch refresh tokens are always
  // single-use. --demo only changes defaults: rotating refresh tokens, 5-minute access tokens.
  const rotatesByDefault = given.demo || flavor === 'logto' || flavor === 'stitch';
  const opts = {
    flavor,
    port: Number(given.port ?? 0),
    profile: given.profile ?? (rotatesByDefault ? 'rotating' : 'plain'),
    accessTtl: Number(given.accessTtl ?? (given.demo ? 300 : DEFAULT_ACCESS_TTL[flavor])),
    signingKeys: (given.signingKeys ?? 'a').split(',').map((s) => s.trim()).filter(Boolean),
    testHooks: Boolean(given.testHooks),
    demo: Boolean(given.demo),
  };
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
  if (!['plain', 'rotating'].includes(opts.profile)) usage('--profile must be plain or rotating');
  if (flavor === 'stitch' && opts.profile !== 'rotating') {
    usage('--flavor stitch: refresh tokens are always single-use (--profile rotating)');
  }
  if (!Number.isInteger(opts.accessTtl) || opts.accessTtl <= 0) usage('bad --access-ttl');
  if (!opts.signingKeys.length) usage('--signing-keys needs at least one key');
  for (const k of opts.signingKeys) if (!['a', 'b'].includes(k)) usage(`unknown signing key ${k}`);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const FLAVOR = opts.flavor;

// ---------------------------------------------------------------------------------------------
// Static data: keys, users, organizations, clients

const readJson = (name) => JSON.parse(readFileSync(join(KEYS, name), 'utf8'));

// The first key signs new tokens; all of them are published in the JWKS.
const signingJwks = { keys: opts.signingKeys.map((k) => readJson(`signing-${k}.json`)) };
const pkjwtPublicJwk = readJson('client-pkjwt.pub.json');

const API_RESOURCE = 'https://api.example.test';
const DEMO_PASSWORD = 'demo';

// Organizations. Auth0 names them by id (`org_acme`) or by name (`acme`); Logto by id, which
// here is the plain key (`acme`), as in the generic `organizations` claim.
const ORGS = {
  acme: { key: 'acme', auth0Id: 'org_acme', name: 'acme', displayName: 'Acme Corporation' },
  globex: { key: 'globex', auth0Id: 'org_globex', name: 'globex', displayName: 'Globex Corporation' },
};
const auth0Org = (idOrName) => Object.values(ORGS)
  .find((o) => o.auth0Id === idOrName || o.name === idOrName);

// Logto organization roles and the organization permissions (scopes) each role grants.
const ORG_ROLE_SCOPES = { admin: ['org:read', 'org:write'], member: ['org:read'] };
const ORG_SCOPES = ['org:read', 'org:write'];

const USERS = {
  alice: {
    login: 'alice',
    email: 'alice@example.com',
    email_verified: true,
    name: 'Alice Example',
    organizations: ['acme', 'globex'],
    roles: { acme: 'admin', globex: 'member' },
  },
  bob: {
    login: 'bob',
    email: 'bob@example.com',
    email_verified: true,
    name: 'Bob Example',
    organizations: ['acme'],
    roles: { acme: 'member' },
  },
};

// Auth0 subjects are `<connection>|<id>`; everywhere else the login is the subject.
const subOf = (login) => (FLAVOR === 'auth0' ? `auth0|${login}` : login);
const userBySub = (sub) => Object.values(USERS).find((u) => subOf(u.login) === sub);

// Routes per flavor (paths relative to the mount point; Logto mounts everything under /oidc).
const ROUTE_DEFAULTS = {
  authorization: '/auth',
  code_verification: '/device',
  device_authorization: '/device/auth',
  end_session: '/session/end',
  introspection: '/token/introspection',
  jwks: '/jwks',
  pushed_authorization_request: '/request',
  revocation: '/token/revocation',
  token: '/token',
  userinfo: '/me',
};
const ROUTES = {
  generic: ROUTE_DEFAULTS,
  logto: ROUTE_DEFAULTS,
  auth0: {
    ...ROUTE_DEFAULTS,
    authorization: '/authorize',
    code_verification: '/activate',
    device_authorization: '/oauth/device/code',
    end_session: '/oidc/logout',
    jwks: '/.well-known/jwks.json',
    pushed_authorization_request: '/oauth/par',
    revocation: '/oauth/revoke',
    token: '/oauth/token',
    userinfo: '/userinfo',
  },
  stitch: {
    ...ROUTE_DEFAULTS,
    authorization: '/connect/authorize',
    end_session: '/connect/endsession',
    introspection: '/connect/introspect',
    jwks: '/.well-known/openid-configuration/jwks',
    pushed_authorization_request: '/connect/par',
    revocation: '/connect/revocation',
    token: '/connect/token',
    userinfo: '/connect/userinfo',
  },
}[FLAVOR];
const MOUNT = FLAVOR === 'logto' ? '/oidc' : '';

const DEVICE_FLOW = FLAVOR !== 'stitch';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

const NATIVE = {
  application_type: 'native',
  redirect_uris: ['dev.tessera:/callback', 'http://127.0.0.1/callback'],
  post_logout_redirect_uris: ['dev.tessera:/logout', 'http://127.0.0.1/logout'],
  grant_types: ['authorization_code', 'refresh_token', ...(DEVICE_FLOW ? [DEVICE_CODE] : [])],
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

function loginPage({
  uid, clientName, login = '', error, heading = 'Sign in', context,
}) {
  return page('Tessera local demo — sign in', `
<h1>${esc(heading)}</h1>
<p class="sub">${context ? `${esc(context)}<br>` : ''}to continue to <strong>${esc(clientName)}</strong></p>
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

// What the login page says, from the provider-specific authorization parameters.
function loginTexts(params) {
  const texts = {};
  if (params.screen_hint === 'signup' || params.interaction_mode === 'signUp') {
    texts.heading = 'Create your account';
    texts.context = 'Sign-up was requested; the demo users already exist, so just sign in';
  }
  if (FLAVOR === 'auth0' && params.organization) {
    const org = auth0Org(params.organization);
    if (org) texts.context = `Organization: ${org.displayName}`;
  }
  return texts;
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
const origin = `http://127.0.0.1:${port}`;
// Auth0 issuers end with a slash (`https://TENANT.auth0.com/`); Logto's are `<endpoint>/oidc`.
const issuer = {
  generic: origin, auth0: `${origin}/`, logto: `${origin}/oidc`, stitch: origin,
}[FLAVOR];
const discoveryUrl = `${origin}${MOUNT}/.well-known/openid-configuration`;
const urlOf = (route) => `${origin}${MOUNT}${ROUTES[route]}`;

// Auth0: grant id → organization id (`org_…`). oidc-provider's Grant cannot carry extra data,
// so the consent step records the organization the authorization was made for here; tokens
// minted from the grant (ID tokens, JWT access tokens, across refresh) read it back.
const auth0OrgByGrant = new Map();
const auth0GrantOrg = (grantId) => {
  const id = grantId && auth0OrgByGrant.get(grantId);
  return id ? auth0Org(id) : undefined;
};

// Logto
const LOGTO_ORG_RESOURCE = 'urn:logto:resource:organizations';
const LOGTO_ORG_SCOPE = 'urn:logto:scope:organizations';
const LOGTO_ORG_ROLES_SCOPE = 'urn:logto:scope:organization_roles';
const logtoOrgAudience = (orgId) => `urn:logto:organization:${orgId}`;

// Stitch
const STITCH_SCOPES = ['accounts', 'balances', 'transactions', 'accountholders'];

function accountClaims(ctx, user, sub, token) {
  const standard = {
    sub, email: user.email, email_verified: user.email_verified, name: user.name,
  };
  switch (FLAVOR) {
    case 'auth0': {
      const org = auth0GrantOrg(token?.grantId ?? ctx?.oidc?.entities?.Grant?.jti);
      return { ...standard, org_id: org?.auth0Id, org_name: org?.name };
    }
    case 'logto':
      return {
        ...standard,
        organizations: Object.keys(user.roles),
        organization_roles: Object.entries(user.roles).map(([org, role]) => `${org}:${role}`),
      };
    case 'stitch':
      return { sub };
    default:
      return { ...standard, organizations: user.organizations };
  }
}

const CLAIMS = {
  generic: {
    openid: ['sub', 'organizations'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  auth0: {
    openid: ['sub', 'org_id', 'org_name'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  logto: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    [LOGTO_ORG_SCOPE]: ['organizations'],
    [LOGTO_ORG_ROLES_SCOPE]: ['organization_roles'],
  },
  stitch: {
    openid: ['sub'],
  },
}[FLAVOR];

const SCOPES = {
  generic: ['openid', 'offline_access', 'email', 'profile'],
  auth0: ['openid', 'offline_access', 'email', 'profile'],
  logto: ['openid', 'offline_access', 'email', 'profile', LOGTO_ORG_SCOPE, LOGTO_ORG_ROLES_SCOPE],
  stitch: ['openid', 'offline_access', ...STITCH_SCOPES],
}[FLAVOR];

const DAY = 24 * 60 * 60;

const TTL = {
  AccessToken: opts.accessTtl,
  AuthorizationCode: 60,
  DeviceCode: 600,
  IdToken: FLAVOR === 'auth0' ? 36000 : 3600,
  Interaction: 3600,
  // Stitch: sliding 365-day refresh tokens (each rotation starts a new lifetime).
  RefreshToken: (FLAVOR === 'stitch' ? 365 : 14) * DAY,
  Session: 14 * DAY,
  Grant: (FLAVOR === 'stitch' ? 2 * 365 : 180) * DAY,
};

// Provider-specific authorization parameters (validated; unknown values are rejected so that a
// typo in Tessera shows up here instead of being silently ignored by the real provider).
const EXTRA_PARAMS = {
  generic: {},
  auth0: {
    audience: null, // → resource indicator, see defaultResource below
    async organization(ctx, value) {
      if (value === undefined) return;
      const org = auth0Org(value);
      if (!org) throw new errors.InvalidRequest(`parameter organization is invalid: ${value}`);
      ctx.oidc.params.organization = org.auth0Id; // names resolve to ids
    },
    async screen_hint(_ctx, value) {
      if (value !== undefined && !['signup', 'login'].includes(value)) {
        throw new errors.InvalidRequest('screen_hint must be signup or login');
      }
    },
  },
  logto: {
    async interaction_mode(_ctx, value) {
      if (value !== undefined && !['signIn', 'signUp'].includes(value)) {
        throw new errors.InvalidRequest('interaction_mode must be signIn or signUp');
      }
    },
  },
  stitch: {
    async nonce(_ctx, value) {
      if (value === undefined) throw new errors.InvalidRequest('nonce is required');
      if (value.length < 32 || value.length > 300) {
        throw new errors.InvalidRequest('nonce must be between 32 and 300 characters long');
      }
    },
  },
}[FLAVOR];

function rotateRefreshTokenSetting() {
  if (opts.profile === 'plain') return { rotateRefreshToken: false };
  // Logto keeps oidc-provider's default policy: public clients rotate on every use,
  // confidential ones once 70% of the token's lifetime has passed.
  if (FLAVOR === 'logto') return {};
  return { rotateRefreshToken: true };
}

async function getResourceServerInfo(ctx, indicator) {
  if (indicator === API_RESOURCE) {
    return {
      scope: 'read write',
      audience: API_RESOURCE,
      accessTokenFormat: 'jwt',
      accessTokenTTL: opts.accessTtl,
      jwt: { sign: { alg: 'RS256' } },
    };
  }
  if (FLAVOR === 'logto' && indicator === LOGTO_ORG_RESOURCE) {
    const org = ctx.state?.logtoOrganization;
    if (!org) {
      // At authorization: the organization resource with every organization permission.
      return { scope: ORG_SCOPES.join(' '), audience: LOGTO_ORG_RESOURCE, accessTokenFormat: 'jwt' };
    }
    // Organization token: audience is the organization, scopes are the user's role scopes there.
    const role = userBySub(org.accountId)?.roles[org.id];
    return {
      scope: (ORG_ROLE_SCOPES[role] ?? []).join(' '),
      audience: logtoOrgAudience(org.id),
      accessTokenFormat: 'jwt',
      accessTokenTTL: opts.accessTtl,
      jwt: { sign: { alg: 'RS256' } },
    };
  }
  if (FLAVOR === 'auth0') throw new errors.AccessDenied(`Service not found: ${indicator}`);
  throw new errors.InvalidTarget();
}

const configuration = {
  clients,
  jwks: signingJwks,
  cookies: { keys: ['tessera-test-idp-cookie-key-not-secret'] },
  routes: ROUTES,

  async findAccount(ctx, sub, token) {
    const user = userBySub(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() { return accountClaims(ctx, user, sub, token); },
    };
  },
  claims: CLAIMS,
  scopes: SCOPES,
  conformIdTokenClaims: false,
  extraParams: EXTRA_PARAMS,

  async extraTokenClaims(ctx, token) {
    if (FLAVOR === 'auth0') {
      const org = auth0GrantOrg(token.grantId);
      return org ? { org_id: org.auth0Id, org_name: org.name } : undefined;
    }
    if (FLAVOR === 'logto' && ctx?.state?.logtoOrganization && token.kind === 'AccessToken') {
      return { organization_id: ctx.state.logtoOrganization.id };
    }
    return undefined;
  },

  formats: {
    customizers: {
      // Auth0: an API access token for a grant with `openid` is also good for /userinfo, and its
      // `scope` lists the OpenID scopes too.
      async jwt(_ctx, token, jwt) {
        if (FLAVOR !== 'auth0') return;
        const grant = token.grantId ? await provider.Grant.find(token.grantId) : undefined;
        const oidcScopes = grant ? grant.getOIDCScope().split(' ').filter(Boolean) : [];
        if (oidcScopes.includes('openid')) {
          jwt.payload.aud = [jwt.payload.aud, urlOf('userinfo')];
        }
        const apiScopes = (jwt.payload.scope ?? '').split(' ').filter(Boolean);
        jwt.payload.scope = [...oidcScopes, ...apiScopes].join(' ') || undefined;
        jwt.payload.azp = jwt.payload.client_id;
      },
    },
  },

  // Refresh tokens: issued whenever the client may use the refresh_token grant and offline_access
  // was granted (see also the authorization middleware below, which keeps offline_access from
  // being dropped when the request has no prompt=consent).
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  ...rotateRefreshTokenSetting(),

  // Stitch authenticates private_key_jwt clients IdentityServer-style: `aud` must be the token
  // endpoint URL (not the issuer), `sub` = `iss` = client_id, and the header names the key.
  async assertJwtClientAuthClaimsAndHeader(ctx, claims, header, client) {
    if (FLAVOR !== 'stitch') return;
    const tokenUrl = urlOf('token');
    const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!auds.includes(tokenUrl)) {
      throw new errors.InvalidClientAuth(`client assertion aud must be the token endpoint ${tokenUrl}`);
    }
    if (claims.sub !== client.clientId) {
      throw new errors.InvalidClientAuth('client assertion sub must be the client_id');
    }
    if (!header.kid) throw new errors.InvalidClientAuth('client assertion header has no kid');
  },

  ttl: TTL,

  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: DEVICE_FLOW,
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
      // Auth0 has no introspection endpoint.
      enabled: FLAVOR !== 'auth0',
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
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        // Auth0's `audience` is its resource indicator (authorization and device endpoints).
        if (FLAVOR === 'auth0') return ctx.oidc.params.audience || undefined;
        return undefined;
      },
      // Logto (like oidc-provider's default) needs `resource` at the token endpoint for an API
      // token; without it the access token is for userinfo only. The others keep the audience.
      async useGrantedResource() {
        return FLAVOR !== 'logto';
      },
      getResourceServerInfo,
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
// Logto organization tokens: the built-in refresh_token grant, wrapped (as Logto itself forks
// it). `organization_id` turns a refresh into an organization token; everything else about the
// refresh — validation, rotation, reuse detection — is oidc-provider's, i.e. Logto's.

if (FLAVOR === 'logto') {
  const { grantTypeHandlers, grantTypeParams, grantTypeDupes } = internals(provider);
  const refreshTokenGrant = grantTypeHandlers.get('refresh_token');
  const params = new Set([...grantTypeParams.get('refresh_token'), 'organization_id']);
  params.delete('grant_type');

  provider.registerGrantType('refresh_token', async (ctx) => {
    const orgId = ctx.oidc.params.organization_id;
    if (orgId === undefined) {
      if (ctx.oidc.params.resource === LOGTO_ORG_RESOURCE) {
        throw new errors.InvalidTarget('use organization_id to get an organization token');
      }
      return refreshTokenGrant(ctx);
    }
    const rt = await provider.RefreshToken.find(ctx.oidc.params.refresh_token, { ignoreExpiration: true });
    // Unusable refresh tokens (unknown, other client, expired, already used → grant revoked)
    // fail exactly as in a plain refresh.
    if (!rt || rt.clientId !== ctx.oidc.client.clientId || rt.isExpired || rt.consumed) {
      return refreshTokenGrant(ctx);
    }
    if (!rt.scopes.has(LOGTO_ORG_SCOPE)) {
      throw new errors.InsufficientScope('refresh token missing required scope', LOGTO_ORG_SCOPE);
    }
    if (!userBySub(rt.accountId)?.roles[orgId]) {
      const err = new errors.AccessDenied('user is not a member of the organization');
      err.status = 403;
      err.statusCode = 403;
      throw err;
    }
    ctx.state.logtoOrganization = { id: orgId, accountId: rt.accountId };
    ctx.oidc.params.resource ??= LOGTO_ORG_RESOURCE;
    record('logto.organization_token', {
      organization_id: orgId, account_id: rt.accountId, resource: ctx.oidc.params.resource,
    });
    return refreshTokenGrant(ctx);
  }, params, grantTypeDupes.get('refresh_token'));
}

// ---------------------------------------------------------------------------------------------
// Event log (GET /__test/events with --test-hooks; always echoed to stderr)

const events = [];
function record(event, details) {
  const entry = { event, at: new Date().toISOString(), ...details };
  events.push(entry);
  if (events.length > 5000) events.shift();
  console.error(`[idp] ${JSON.stringify(entry)}`);
}

// The path as the client sent it (Logto: including the /oidc mount).
const fullPath = (ctx) => (ctx.req.originalUrl ? ctx.req.originalUrl.split('?')[0] : ctx.path);

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
  path: ctx ? fullPath(ctx) : undefined,
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
  path: ctx ? fullPath(ctx) : undefined,
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

// Every answer's tokens go to the secret scan's ledger (when it collects); registered first, so
// it sees the final body of every route.
provider.use(async (ctx, next) => {
  await next();
  recordIssued(ctx.body);
});

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

// The JSON body of a test-hook request, or undefined when it is not JSON.
async function readJsonBody(req) {
  try {
    return JSON.parse(await readBody(req));
  } catch {
    return undefined;
  }
}

// Replaces the query string (keeping Logto's /oidc mount visible to oidc-provider's URL builder).
function setQuery(ctx, query) {
  ctx.querystring = query.toString();
  if (ctx.req.originalUrl !== undefined) ctx.req.originalUrl = `${MOUNT}${ctx.url}`;
}

// Test hooks: one-shot faults per path, and the event log.
const sabotage = new Map();
const SABOTAGE_KINDS = new Set([
  'html', 'truncated', 'huge', 'wrong_content_type', 'slow', 'redirect', 'status500_json',
  'stall', 'id_token_bad_signature', 'id_token_other_sub', 'huge_expires_in',
]);

// `stall`: the held request per path (its release function), and who waits for one to be held.
const stalled = new Map();
const stallWatchers = new Map();

function holdRequest(path) {
  return new Promise((release) => {
    stalled.set(path, release);
    for (const notify of stallWatchers.get(path) ?? []) notify();
    stallWatchers.delete(path);
  });
}

function whenHeld(path) {
  if (stalled.has(path)) return Promise.resolve();
  return new Promise((notify) => {
    stallWatchers.set(path, [...(stallWatchers.get(path) ?? []), notify]);
  });
}

const privateSigningJwk = (name) => readJson(`signing-${name}.json`);

// The ID token of a token response, made hostile: `id_token_bad_signature` keeps header and
// claims but signs with the other key (not the one its `kid` names); `id_token_other_sub` names
// the other demo user and is signed correctly.
function forgeIdToken(idToken, kind) {
  const [h, p] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const own = header.kid === 'key-a' ? 'a' : 'b';
  let key = own;
  if (kind === 'id_token_bad_signature') {
    key = own === 'a' ? 'b' : 'a';
  } else {
    const other = Object.values(USERS).find((u) => subOf(u.login) !== payload.sub);
    payload.sub = subOf(other.login);
  }
  const input = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = signData('sha256', Buffer.from(input), createPrivateKey({
    key: privateSigningJwk(key), format: 'jwk',
  }));
  return `${input}.${signature.toString('base64url')}`;
}

const sha256 = (text) => createHash('sha256').update(text).digest('base64url');

if (opts.testHooks) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__test/sabotage' && ctx.method === 'POST') {
      const spec = await readJsonBody(ctx.req);
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
    // GET /__test/stalled?path=P answers once a request to P is held by `stall`.
    if (ctx.path === '/__test/stalled' && ctx.method === 'GET') {
      const path = String(ctx.query.path ?? '');
      await whenHeld(path);
      ctx.body = { held: path };
      return;
    }
    // POST /__test/release {"path":P} lets the request held on P go on.
    if (ctx.path === '/__test/release' && ctx.method === 'POST') {
      const spec = await readJsonBody(ctx.req);
      const release = typeof spec?.path === 'string' ? stalled.get(spec.path) : undefined;
      if (!release) {
        ctx.status = 409;
        ctx.body = { error: 'invalid_request', error_description: `no request is held on ${spec?.path}` };
        return;
      }
      stalled.delete(spec.path);
      release();
      ctx.body = { released: spec.path };
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

    const path = fullPath(ctx);
    const kind = sabotage.get(path);
    if (!kind) return next();
    sabotage.delete(path);
    record('test.sabotage_fired', { path, kind });
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
      case 'stall':
        await holdRequest(path);
        record('test.stall_released', { path });
        return next();
      case 'id_token_bad_signature':
      case 'id_token_other_sub': {
        await next();
        const body = ctx.body;
        if (ctx.status !== 200 || typeof body?.id_token !== 'string') {
          record('test.sabotage_missed', { path, kind, status: ctx.status });
          return;
        }
        ctx.body = { ...body, id_token: forgeIdToken(body.id_token, kind) };
        record('test.id_token_forged', {
          path, kind, access_token_sha256: sha256(body.access_token),
        });
        return;
      }
      case 'huge_expires_in':
        await next();
        if (ctx.body && typeof ctx.body === 'object' && 'expires_in' in ctx.body) {
          // Serialized as 18446744073709550000: still a u64, but any "now +" overflows it.
          ctx.body = { ...ctx.body, expires_in: 18446744073709550000 };
        }
        return;
      default:
        return next();
    }
  });
}

// Auth0 and Logto also take JSON bodies at their token endpoints (Auth0 at every /oauth/*
// endpoint). The body is parsed here and handed to oidc-provider as an already-parsed form.
const JSON_BODY_PATHS = new Set({
  auth0: [ROUTES.token, ROUTES.revocation, ROUTES.device_authorization],
  logto: [ROUTES.token],
}[FLAVOR] ?? []);

if (JSON_BODY_PATHS.size) {
  provider.use(async (ctx, next) => {
    if (ctx.method !== 'POST' || !JSON_BODY_PATHS.has(ctx.path)) return next();
    const raw = await readBody(ctx.req);
    let body;
    if (ctx.is('application/json')) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'request body is not a JSON object' };
        return undefined;
      }
      body = Object.fromEntries(Object.entries(body).map(([k, v]) => [k, String(v)]));
    } else {
      body = Object.fromEntries(new URLSearchParams(raw));
    }
    ctx.req.body = body;
    ctx.req.headers['content-type'] = 'application/x-www-form-urlencoded';
    return next();
  });
}

// offline_access is silently removed from an authorization request unless it carries
// prompt=consent (OpenID Connect Core 11). Real providers (Auth0, Logto, Stitch) issue refresh
// tokens without it, so an authorization request asking for offline_access gets `consent` added
// to its prompt here. Native clients are always sent through the consent prompt anyway, which the
// interaction below grants automatically, so nothing changes for the user.
// Auth0 does not know RFC 8707 `resource` (it uses `audience`), so it is dropped there.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === ROUTES.authorization) {
    const query = new URLSearchParams(ctx.querystring);
    let changed = false;
    const scopes = (query.get('scope') ?? '').split(' ');
    const prompts = (query.get('prompt') ?? '').split(' ').filter(Boolean);
    if (scopes.includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
      query.set('prompt', [...prompts, 'consent'].join(' '));
      changed = true;
    }
    if (FLAVOR === 'auth0' && query.has('resource')) {
      query.delete('resource');
      changed = true;
    }
    if (changed) setQuery(ctx, query);
  }
  return next();
});

// ---------------------------------------------------------------------------------------------
// Auth0 specifics: /v2/logout, device-flow interval and slow_down, token endpoint answers,
// /userinfo with an API access token.

const AUTH0_DEVICE_INTERVAL = 5;
const auth0LastPoll = new Map();

function signingKeyFor(kid) {
  const jwk = signingJwks.keys.find((k) => k.kid === kid);
  return jwk ? createPublicKey({ key: jwk, format: 'jwk' }) : undefined;
}

// Verifies one of our RS256 JWT access tokens; returns its payload or undefined.
function verifyAccessJwt(jwt) {
  const [h, p, s] = jwt.split('.');
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const payload = JSON.parse(Buffer.from(p, 'base64url'));
    const key = header.alg === 'RS256' ? signingKeyFor(header.kid) : undefined;
    if (!key || !verifySignature('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) {
      return undefined;
    }
    if (payload.iss !== issuer || !(payload.exp > Date.now() / 1000)) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

if (FLAVOR === 'auth0') {
  provider.use(async (ctx, next) => {
    // GET /v2/logout?client_id&returnTo: ends the session (refresh tokens stay valid).
    if (ctx.path === '/v2/logout' && ctx.method === 'GET') {
      const clientId = ctx.query.client_id;
      const returnTo = ctx.query.returnTo;
      const client = clientId ? await provider.Client.find(String(clientId)) : undefined;
      const fail = (description) => {
        record('auth0.logout_error', { client_id: clientId, return_to: returnTo, error_description: description });
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — error', `
<h1>Oops!, something went wrong</h1>
<pre><strong>invalid_request</strong>: ${esc(description)}</pre>`);
      };
      if (clientId && !client) return fail(`unknown client_id ${clientId}`);
      if (returnTo !== undefined) {
        if (typeof returnTo !== 'string' || !client || !client.postLogoutRedirectUriAllowed(returnTo)) {
          return fail(`The "returnTo" querystring parameter "${returnTo}" is not defined as a valid URL in "Allowed Logout URLs".`);
        }
      }
      const session = await provider.Session.get(ctx);
      const hadSession = Boolean(session.accountId);
      if (!session.new) await session.destroy();
      ctx.cookies.set(provider.cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax' });
      record('auth0.logout', { client_id: clientId, return_to: returnTo, had_session: hadSession });
      ctx.set('Cache-Control', 'no-store');
      const target = returnTo ?? client?.postLogoutRedirectUris?.[0];
      if (target) {
        ctx.status = 302;
        ctx.set('Location', target);
        ctx.body = '';
      } else {
        ctx.type = 'html';
        ctx.body = page('Tessera local demo — signed out', '<h1>Signed out</h1>');
      }
      return undefined;
    }

    // /userinfo accepts API access tokens whose aud lists it (see formats.customizers.jwt).
    if (ctx.path === ROUTES.userinfo) {
      const bearer = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1];
      if (bearer && bearer.split('.').length === 3) {
        const payload = verifyAccessJwt(bearer);
        const aud = [payload?.aud].flat();
        const user = payload && userBySub(payload.sub);
        ctx.set('Cache-Control', 'no-store');
        if (!user || !aud.includes(urlOf('userinfo'))) {
          ctx.status = 401;
          ctx.set('WWW-Authenticate', 'Bearer error="invalid_token", error_description="invalid token provided"');
          ctx.body = { error: 'invalid_token', error_description: 'invalid token provided' };
          return undefined;
        }
        const scopes = new Set((payload.scope ?? '').split(' '));
        const claims = { sub: payload.sub };
        if (scopes.has('email')) Object.assign(claims, { email: user.email, email_verified: user.email_verified });
        if (scopes.has('profile')) claims.name = user.name;
        if (payload.org_id) Object.assign(claims, { org_id: payload.org_id, org_name: payload.org_name });
        ctx.body = claims;
        return undefined;
      }
      return next();
    }

    // Device flow: `interval` in the answer, slow_down when polled faster.
    if (ctx.path === ROUTES.device_authorization && ctx.method === 'POST') {
      await next();
      if (ctx.status === 200 && ctx.body?.device_code) {
        ctx.body = { ...ctx.body, interval: AUTH0_DEVICE_INTERVAL };
      }
      return undefined;
    }

    if (ctx.path === ROUTES.token && ctx.method === 'POST') {
      const form = ctx.req.body ?? {};
      if (form.grant_type === DEVICE_CODE && form.device_code) {
        const now = Date.now();
        const last = auth0LastPoll.get(form.device_code);
        auth0LastPoll.set(form.device_code, now);
        if (last !== undefined && now - last < AUTH0_DEVICE_INTERVAL * 1000) {
          ctx.status = 429;
          ctx.set('Cache-Control', 'no-store');
          ctx.body = {
            error: 'slow_down',
            error_description: `You are polling faster than the specified interval of ${AUTH0_DEVICE_INTERVAL} seconds.`,
          };
          record('auth0.slow_down', { client_id: form.client_id });
          return undefined;
        }
      }
      await next();
      const body = ctx.body;
      if (!body || typeof body !== 'object') return undefined;
      // Auth0 answers 403 to pending/denied device codes and to invalid grants.
      if (['authorization_pending', 'expired_token', 'access_denied', 'invalid_grant'].includes(body.error)) {
        ctx.status = 403;
        if (body.error === 'invalid_grant' && form.grant_type === 'refresh_token') {
          ctx.body = { ...body, error_description: 'Unknown or invalid refresh token.' };
        }
      }
      if (ctx.status === 200) {
        const out = { ...body };
        // A non-rotating refresh token is not sent again.
        if (form.grant_type === 'refresh_token' && out.refresh_token === form.refresh_token) {
          delete out.refresh_token;
        }
        // `scope` of an API token lists the OpenID scopes too.
        if (typeof out.access_token === 'string' && out.access_token.split('.').length === 3) {
          const scope = JSON.parse(Buffer.from(out.access_token.split('.')[1], 'base64url')).scope;
          if (scope) out.scope = scope;
        }
        ctx.body = out;
      }
      return undefined;
    }
    return next();
  });
}

// ---------------------------------------------------------------------------------------------
// Interactions: our own login page; consent is granted automatically. (Native clients always go
// through the consent prompt, so it runs on every authorization, even with a live session.)

// Interactions stay at /interaction/:uid at the root for every flavor (Logto's sign-in pages
// live outside /oidc too).
const INTERACTION = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/;

async function autoConsent(ctx, details) {
  const { prompt, params, session } = details;

  // Auth0 organizations: the person must be a member; the grant is bound to the organization.
  let org;
  if (FLAVOR === 'auth0' && params.organization) {
    org = auth0Org(params.organization);
    const user = userBySub(session.accountId);
    if (!org || !user?.roles[org.key]) {
      const description = `user ${session.accountId} is not part of the ${params.organization} organization`;
      record('auth0.organization_denied', { account_id: session.accountId, org_id: params.organization });
      await provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: description,
      }, { mergeWithLastSubmission: false });
      return;
    }
  }

  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
    // Auth0: a grant (and its refresh tokens) stays with the organization it was made for;
    // signing into another organization (or none) is a new grant.
    if (grant && FLAVOR === 'auth0' && auth0OrgByGrant.get(grant.jti) !== org?.auth0Id) {
      grant = undefined;
    }
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
  if (org) {
    auth0OrgByGrant.set(grantId, org.auth0Id);
    record('auth0.organization_bound', { grant_id: grantId, org_id: org.auth0Id, account_id: session.accountId });
  }
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
  const texts = loginTexts(details.params);
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
      send(200, loginPage({
        uid, clientName, login, error: 'Wrong username or password.', ...texts,
      }));
      return undefined;
    }
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: subOf(login) },
    }, { mergeWithLastSubmission: false });
    return undefined;
  }

  if (!action && ctx.method === 'GET') {
    if (details.prompt.name === 'login') {
      send(200, loginPage({
        uid, clientName, login: details.params.login_hint ?? '', ...texts,
      }));
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

const handle = provider.callback();

// Logto: the provider lives under /oidc. Requests there reach oidc-provider with the prefix
// stripped and `originalUrl` set (so it builds /oidc/… URLs); the interaction pages and the test
// hooks stay at the root; anything else is 404.
function logtoMount(req, res) {
  const [path] = req.url.split('?');
  if (path === MOUNT || path.startsWith(`${MOUNT}/`)) {
    req.originalUrl = req.url;
    const rest = req.url.slice(MOUNT.length);
    req.url = rest.startsWith('/') ? rest : `/${rest}`;
    return handle(req, res);
  }
  if (path.startsWith('/interaction/') || path.startsWith('/__test/')) return handle(req, res);
  res.statusCode = 404;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ error: 'not_found', error_description: `no route ${path} (Logto serves OpenID Connect under ${MOUNT})` }));
  return undefined;
}

server.on('request', MOUNT ? logtoMount : handle);
process.stdout.write(`${JSON.stringify({
  issuer, port, flavor: FLAVOR, discovery: discoveryUrl,
})}\n`);
console.error(`[idp] listening on ${issuer} flavor=${FLAVOR} profile=${opts.profile} `
  + `access-ttl=${opts.accessTtl}s signing-keys=${opts.signingKeys.join(',')}`
  + `${opts.testHooks ? ' test-hooks' : ''}${opts.demo ? ' demo' : ''}`);
if (opts.demo) {
  console.error(`[idp] demo users: alice / bob, password "${DEMO_PASSWORD}"; public client id tessera-public`);
  console.error(`[idp] discovery: ${discoveryUrl}`);
}

const shutdown = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
