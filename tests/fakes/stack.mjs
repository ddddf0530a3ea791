// A fake Stack Auth API (client access type) for Tessera's tests: password, email one-time code,
// TOTP second factor, anonymous and restricted users, OAuth authorize → a stand-in upstream
// provider (served by the fake under /upstream/) → Stack's callback → token with PKCE,
// non-rotating refresh tokens, sign-out, users/me, teams and the ES256 JWKS. NOT Stack Auth and NOT
// for production use: fixed fixture, in-memory state, signing keys generated at start-up, test
// hooks under /__test/.
//
//   node tests/fakes/stack.mjs [--port N] [--access-ttl SECS] [--require-email-verification]
//                              [--bot-challenge]
//
// When listening, prints exactly one JSON line on stdout:
//   {"base_url":"http://127.0.0.1:PORT","port":PORT,"project_id":…,"publishable_key":…}
// Everything else goes to stderr. API base: {base_url}/api/v1. What is (and is not) emulated:
// README.md next to this file; the contract it follows: shared/providers.md §3 and §7.9.

import {
  Clock, newSigningKey, parseArgs, randomAlnum, randomToken, readBody, sendJson, sendText, serve,
  sha256b64url, signJwt, testHooks, totp, uuid, verifyJwtSignature,
} from './common.mjs';

const opts = parseArgs(
  process.argv.slice(2),
  {
    port: { type: 'int', default: 0, min: 0, max: 65535 },
    'access-ttl': { type: 'int', default: 600, min: 1 },
    'require-email-verification': { type: 'flag' },
    'bot-challenge': { type: 'flag' },
  },
  'node stack.mjs [--port N (0 = random)] [--access-ttl SECS (600)] [--require-email-verification]'
    + ' [--bot-challenge]',
);
const ACCESS_TTL = opts['access-ttl'];
/** The project's `onboarding.requireEmailVerification`: unverified users are restricted. */
const REQUIRE_EMAIL_VERIFICATION = opts['require-email-verification'];
/** A sign-up rule that rejects OAuth sign-ups whose bot challenge did not pass. */
const SIGN_UP_NEEDS_BOT_CHECK = opts['bot-challenge'];

// ---------------------------------------------------------------------------------------------
// Fixture

const PROJECT_ID = '11111111-2222-3333-4444-555555555555';
const PUBLISHABLE_KEY = 'pck_fake';
const PUBLIC_CLIENT_SENTINEL = '__stack_public_client__';
const BRANCH_ID = 'main';
const OAUTH_PROVIDERS = ['github', 'google'];
const TRUSTED_DOMAINS = ['https://app.example.com'];
const REFRESH_TTL_MS = 365 * 24 * 3600 * 1000;
const VERIFICATION_CODE_TTL_MS = 7 * 24 * 3600 * 1000;
const MFA_ATTEMPT_TTL_MS = 10 * 60 * 1000;
const AUTH_CODE_TTL_MS = 5 * 60 * 1000;
const OUTER_OAUTH_TTL_MS = 10 * 60 * 1000;
/** Cloudflare Turnstile's documented test token that always passes verification. */
const TURNSTILE_PASSING_TOKEN = 'XXXX.DUMMY.TOKEN.XXXX';

let BASE_URL = ''; // set once listening; the issuer depends on it

const clock = new Clock();

const TEAMS = new Map([
  ['acce0000-0000-4000-8000-000000000001', 'Team Acme'],
  ['610be000-0000-4000-8000-000000000002', 'Team Globex'],
].map(([id, name]) => [id, {
  id,
  display_name: name,
  profile_image_url: null,
  client_metadata: null,
  client_read_only_metadata: null,
}]));
const TEAM_ACME = 'acce0000-0000-4000-8000-000000000001';
const TEAM_GLOBEX = '610be000-0000-4000-8000-000000000002';

const CAROL_TOTP_SECRET = Buffer.from('7465737365726120666b2074f07470206b657921', 'hex');

const users = new Map(); // id → user
function addUser(u) {
  const user = {
    password: null,
    teams: [],
    selected_team_id: null,
    requires_totp_mfa: false,
    totp_secret: null,
    is_anonymous: false,
    oauth_providers: [],
    client_metadata: null,
    profile_image_url: null,
    otp_auth_enabled: true,
    passkey_auth_enabled: false,
    signed_up_at_millis: clock.nowMs(),
    email_verified: Boolean(u.email),
    ...u,
  };
  users.set(user.id, user);
  return user;
}
addUser({
  id: 'a11ce000-0000-4000-8000-000000000001',
  email: 'alice@example.com',
  display_name: 'Alice Example',
  password: 'demo',
  teams: [TEAM_ACME, TEAM_GLOBEX],
  selected_team_id: TEAM_ACME,
});
addUser({
  id: 'b0b00000-0000-4000-8000-000000000002',
  email: 'bob@example.com',
  display_name: 'Bob Example',
  password: 'demo',
  teams: [TEAM_ACME],
  selected_team_id: TEAM_ACME,
});
addUser({
  id: 'ca401000-0000-4000-8000-000000000003',
  email: 'carol@example.com',
  display_name: 'Carol Example',
  password: 'demo',
  teams: [TEAM_ACME],
  selected_team_id: TEAM_ACME,
  requires_totp_mfa: true,
  totp_secret: CAROL_TOTP_SECRET,
});
addUser({
  id: 'e414e000-0000-4000-8000-000000000005',
  email: 'erin@example.com',
  display_name: 'Erin Example',
  password: 'demo',
  teams: [TEAM_ACME],
  selected_team_id: TEAM_ACME,
  email_verified: false,
});

const userByEmail = (email) => [...users.values()].find((u) => u.email === email.toLowerCase());

// ---------------------------------------------------------------------------------------------
// State

/**
 * One key set per audience, two keys each with the first signing (Stack's `getPrivateJwks`: the
 * legacy key, then the current one), published without `use` (its `getPublicJwkSet`).
 */
const stackKey = (prefix) => newSigningKey('ES256', `${prefix}-${uuid()}`, { publishUse: false });
const signingKeys = [stackKey('stack'), stackKey('stack')];
const restrictedKeys = [stackKey('stack-restricted'), stackKey('stack-restricted')];
const anonKeys = [stackKey('stack-anon'), stackKey('stack-anon')];
const KEYS = { normal: signingKeys, restricted: restrictedKeys, anonymous: anonKeys };
const refreshTokens = new Map(); // token → { id, userId, expiresAt }
const refreshTokensById = new Map();
const verificationCodes = new Map(); // code → { kind, email, userId?, expiresAt, usedAt }
const authCodes = new Map(); // code → { userId, redirectUri, challenge, method, scope, after, expiresAt, used }
const cliLogins = new Map(); // polling_code → { login_code, expiresAt, refreshToken, status }
const outerFlows = new Map(); // inner state → the OAuth flow between authorize and callback
const upstreamCodes = new Map(); // upstream code → { email, innerState, used }
const upstreamLogins = new Map(); // uid of an upstream login page → { provider, innerState }
const outbox = [];
const requestLog = [];
/** Whom the stand-in upstream provider has signed in in the browser; null: it asks. */
let oauthIdentity = 'alice@example.com';

// ---------------------------------------------------------------------------------------------
// Known errors: status + `x-stack-known-error: CODE` + `{code, details?, error}`

class KnownError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A plain `StatusError`: text body, no known-error header. */
class StatusError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** An error from the OAuth library: `{error, error_description}`. */
class OAuthError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

const K = {
  schema: (path, problems) => {
    const message = `Request validation failed on ${path}:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
    return new KnownError(400, 'SCHEMA_ERROR', message, { message });
  },
  bodyParsing: (m) => new KnownError(400, 'BODY_PARSING_ERROR', m),
  accessTypeRequired: () => new KnownError(400, 'ACCESS_TYPE_REQUIRED',
    "You must specify an access level for this Stack project. Make sure project API keys are provided (eg. x-stack-publishable-client-key) and you set the x-stack-access-type header to 'client', 'server', or 'admin'."),
  keyWithoutAccessType: () => new KnownError(400, 'PROJECT_KEY_WITHOUT_ACCESS_TYPE',
    "Either an API key or an admin access token was provided, but the x-stack-access-type header is missing. Set it to 'client', 'server', or 'admin' as appropriate."),
  invalidAccessType: (t) => new KnownError(400, 'INVALID_ACCESS_TYPE',
    `The x-stack-access-type header must be 'client', 'server', or 'admin', but was '${t}'.`),
  accessTypeWithoutProjectId: (t) => new KnownError(400, 'ACCESS_TYPE_WITHOUT_PROJECT_ID',
    `The x-stack-access-type header was '${t}', but the x-stack-project-id header was not provided.`,
    { request_type: t }),
  keyRequired: (projectId) => new KnownError(401, 'PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT',
    'Publishable client keys are required for this project. Create one in Project Keys, or disable this requirement there to allow keyless client access.',
    { project_id: projectId }),
  invalidKey: (projectId) => new KnownError(401, 'INVALID_PUBLISHABLE_CLIENT_KEY',
    `The publishable key is not valid for the project ${JSON.stringify(projectId)}. Does the project and/or the key exist?`,
    { project_id: projectId }),
  invalidServerKey: (projectId) => new KnownError(401, 'INVALID_SECRET_SERVER_KEY',
    `The secret server key is not valid for the project ${JSON.stringify(projectId)}. Does the project and/or the key exist?`,
    { project_id: projectId }),
  invalidAdminKey: (projectId) => new KnownError(401, 'INVALID_SUPER_SECRET_ADMIN_KEY',
    `The super secret admin key is not valid for the project ${JSON.stringify(projectId)}. Does the project and/or the key exist?`,
    { project_id: projectId }),
  branch: (b) => new KnownError(400, 'BRANCH_DOES_NOT_EXIST', `The branch with ID ${b} does not exist.`, { branch_id: b }),
  unparsableAt: () => new KnownError(401, 'UNPARSABLE_ACCESS_TOKEN', 'Access token is not parsable.'),
  atExpired: (ms) => new KnownError(401, 'ACCESS_TOKEN_EXPIRED',
    `Access token has expired. Please refresh it and try again. (The access token expired at ${new Date(ms).toISOString()}.)`,
    { expired_at_millis: ms }),
  atWrongProject: (expected, actual) => new KnownError(401, 'INVALID_PROJECT_FOR_ACCESS_TOKEN',
    `Access token not valid for this project. Expected project ID ${JSON.stringify(expected)}, but the token is for project ID ${JSON.stringify(actual)}.`,
    { expected_project_id: expected, actual_project_id: actual }),
  anonNotAllowed: () => new KnownError(401, 'ANONYMOUS_AUTHENTICATION_NOT_ALLOWED',
    "X-Stack-Access-Token is for an anonymous user, but anonymous users are not enabled. Set the X-Stack-Allow-Anonymous-User header of this request to 'true' to allow anonymous users."),
  restrictedNotAllowed: (reason) => new KnownError(403, 'RESTRICTED_USER_NOT_ALLOWED',
    `The user in the access token is in restricted state. Reason: ${reason.type}. Please pass the X-Stack-Allow-Restricted-User header if this is intended.`,
    { restricted_reason: reason }),
  oauthAccessDenied: () => new KnownError(400, 'OAUTH_PROVIDER_ACCESS_DENIED', 'The OAuth provider denied access to the user.'),
  outerTimeout: () => new KnownError(408, 'OUTER_OAUTH_TIMEOUT', 'The OAuth flow has timed out. Please sign in again.'),
  botRequired: () => new KnownError(409, 'BOT_CHALLENGE_REQUIRED', 'An additional bot challenge is required before sign-up can continue.'),
  botFailed: () => new KnownError(400, 'BOT_CHALLENGE_FAILED', 'Visible bot challenge verification failed',
    { message: 'Visible bot challenge verification failed' }),
  signUpRejected: () => new KnownError(403, 'SIGN_UP_REJECTED', "Your sign up was rejected by an administrator's sign-up rule.",
    { message: "Your sign up was rejected by an administrator's sign-up rule." }),
  rtNotFound: () => new KnownError(401, 'REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED',
    'Refresh token not found for this project, or the session has expired/been revoked.'),
  noUser: () => new KnownError(400, 'CANNOT_GET_OWN_USER_WITHOUT_USER',
    "You have specified 'me' as a userId, but did not provide authentication for a user."),
  emailPassword: () => new KnownError(400, 'EMAIL_PASSWORD_MISMATCH', 'Wrong e-mail or password.'),
  redirect: () => new KnownError(400, 'REDIRECT_URL_NOT_WHITELISTED',
    'Redirect URL not whitelisted. Did you forget to add this domain to the trusted domains list on the Stack Auth dashboard?'),
  codeNotFound: () => new KnownError(404, 'VERIFICATION_CODE_NOT_FOUND', 'The verification code does not exist for this project.'),
  codeExpired: () => new KnownError(400, 'VERIFICATION_CODE_EXPIRED', 'The verification code has expired.'),
  codeUsed: () => new KnownError(409, 'VERIFICATION_CODE_ALREADY_USED', 'The verification link has already been used.'),
  mfaRequired: (attemptCode) => new KnownError(400, 'MULTI_FACTOR_AUTHENTICATION_REQUIRED',
    'Multi-factor authentication is required for this user.', { attempt_code: attemptCode }),
  invalidTotp: () => new KnownError(400, 'INVALID_TOTP_CODE', 'The TOTP code is invalid. Please try again.'),
  teamNotFound: (teamId) => new KnownError(404, 'TEAM_NOT_FOUND', `Team ${teamId} not found.`, { team_id: teamId }),
  membershipNotFound: (teamId, userId) => new KnownError(404, 'TEAM_MEMBERSHIP_NOT_FOUND',
    `User ${userId} is not found in team ${teamId}.`, { team_id: teamId, user_id: userId }),
  oauthClient: (clientId) => new KnownError(400, 'INVALID_OAUTH_CLIENT_ID_OR_SECRET',
    'The OAuth client ID or secret is invalid. The client ID must be equal to the project ID (potentially with a hash and a branch ID), and the client secret must be a publishable client key.',
    { client_id: clientId ?? null }),
  oauthProvider: () => new KnownError(400, 'OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED', 'The OAuth provider is not found or not enabled.'),
  invalidAuthCode: () => new KnownError(400, 'INVALID_AUTHORIZATION_CODE', 'The given authorization code is invalid.'),
  pollingCode: () => new KnownError(400, 'INVALID_POLLING_CODE', 'The polling code is invalid or does not exist.'),
};

// ---------------------------------------------------------------------------------------------
// Tokens

/**
 * Why a user is restricted (Stack's `computeRestrictedStatus`): anonymous users always; others
 * when the project requires a verified e-mail and theirs is not. `null` when not restricted.
 */
function restrictedReason(user) {
  if (user.is_anonymous) return { type: 'anonymous' };
  if (REQUIRE_EMAIL_VERIFICATION && !user.email_verified) return { type: 'email_not_verified' };
  return null;
}

/** `normal`, `restricted` or `anonymous`: selects the token's issuer, audience and key set. */
function userType(user) {
  if (user.is_anonymous) return 'anonymous';
  return restrictedReason(user) ? 'restricted' : 'normal';
}

const ISSUER_PATH = { normal: 'projects', restricted: 'projects-restricted-users', anonymous: 'projects-anonymous-users' };
const AUDIENCE_SUFFIX = { normal: '', restricted: ':restricted', anonymous: ':anon' };
const issuerFor = (type) => `${BASE_URL}/api/v1/${ISSUER_PATH[type]}/${PROJECT_ID}`;
const audienceFor = (type) => `${PROJECT_ID}${AUDIENCE_SUFFIX[type]}`;

function mintAccessToken(user, rt) {
  const iat = clock.nowSec();
  const type = userType(user);
  const reason = restrictedReason(user);
  return signJwt(KEYS[type][0], {
    sub: user.id,
    iss: issuerFor(type),
    aud: audienceFor(type),
    iat,
    exp: iat + ACCESS_TTL,
    project_id: PROJECT_ID,
    branch_id: BRANCH_ID,
    refresh_token_id: rt.id,
    role: 'authenticated',
    name: user.display_name,
    email: user.email,
    email_verified: user.email_verified,
    selected_team_id: user.selected_team_id,
    signed_up_at: Math.floor(user.signed_up_at_millis / 1000),
    is_anonymous: user.is_anonymous,
    is_restricted: reason !== null,
    restricted_reason: reason,
    requires_totp_mfa: user.requires_totp_mfa,
  });
}

function createSession(user) {
  const rt = { id: uuid(), token: randomToken(32), userId: user.id, expiresAt: clock.nowMs() + REFRESH_TTL_MS };
  refreshTokens.set(rt.token, rt);
  refreshTokensById.set(rt.id, rt);
  return { rt, accessToken: mintAccessToken(user, rt) };
}

function liveRefreshToken(token) {
  const rt = typeof token === 'string' ? refreshTokens.get(token) : undefined;
  if (!rt || clock.nowMs() >= rt.expiresAt) throw K.rtNotFound();
  return rt;
}

/**
 * Decodes `x-stack-access-token` the way the real backend does before any handler runs
 * (`decodeAccessToken`): the issuer and audience must match the key set that signed it, and the
 * audience must agree with `is_anonymous` / `is_restricted`.
 */
function decodeAccessToken(token) {
  const v = verifyJwtSignature(token, [...signingKeys, ...restrictedKeys, ...anonKeys]);
  if (!v) throw K.unparsableAt();
  const type = Object.keys(KEYS).find((t) => KEYS[t].includes(v.key));
  const p = v.payload;
  if (p.iss !== issuerFor(type) || typeof p.sub !== 'string' || typeof p.exp !== 'number'
      || typeof p.aud !== 'string' || !p.aud.endsWith(AUDIENCE_SUFFIX[type])
      || Boolean(p.is_anonymous) !== (type === 'anonymous')
      || Boolean(p.is_restricted) !== (type !== 'normal')) {
    throw K.unparsableAt();
  }
  if (p.exp <= clock.nowSec()) throw K.atExpired(p.exp * 1000);
  const projectId = p.aud.split(':')[0];
  if (projectId !== PROJECT_ID) throw K.atWrongProject(PROJECT_ID, projectId);
  return { userId: p.sub, refreshTokenId: p.refresh_token_id, anon: type === 'anonymous', restrictedReason: p.restricted_reason ?? null };
}

function newVerificationCode(record) {
  const code = randomAlnum(45);
  verificationCodes.set(code, { ...record, usedAt: null });
  return code;
}

/** Looks up a 45-character verification code of `kind`; marks it used. */
function useVerificationCode(codeRaw, kind) {
  const code = codeRaw.toLowerCase();
  const vc = verificationCodes.get(code);
  if (!vc || vc.kind !== kind) throw K.codeNotFound();
  if (vc.expiresAt < clock.nowMs()) throw K.codeExpired();
  if (vc.usedAt) throw K.codeUsed();
  vc.usedAt = clock.nowMs();
  return vc;
}

/** Signs in `user`, or refuses with MULTI_FACTOR_AUTHENTICATION_REQUIRED if TOTP is on. */
function signInOrMfa(user) {
  if (user.requires_totp_mfa) {
    const attempt = newVerificationCode({
      kind: 'mfa_attempt', userId: user.id, expiresAt: clock.nowMs() + MFA_ATTEMPT_TTL_MS,
    });
    throw K.mfaRequired(attempt);
  }
  return createSession(user);
}

// ---------------------------------------------------------------------------------------------
// Objects

function teamObject(id) {
  return { ...TEAMS.get(id) };
}

function userObject(u) {
  const reason = restrictedReason(u);
  return {
    id: u.id,
    primary_email: u.email,
    primary_email_verified: u.email_verified,
    primary_email_auth_enabled: Boolean(u.email),
    display_name: u.display_name,
    selected_team: u.selected_team_id ? teamObject(u.selected_team_id) : null,
    selected_team_id: u.selected_team_id,
    profile_image_url: u.profile_image_url,
    signed_up_at_millis: u.signed_up_at_millis,
    has_password: Boolean(u.password),
    otp_auth_enabled: u.otp_auth_enabled,
    passkey_auth_enabled: u.passkey_auth_enabled,
    client_metadata: u.client_metadata,
    client_read_only_metadata: null,
    auth_with_email: Boolean(u.email),
    oauth_providers: u.oauth_providers,
    requires_totp_mfa: u.requires_totp_mfa,
    is_anonymous: u.is_anonymous,
    is_restricted: reason !== null,
    restricted_reason: reason,
  };
}

function projectObject() {
  return {
    id: PROJECT_ID,
    display_name: 'Tessera fake project',
    config: {
      sign_up_enabled: true,
      credential_enabled: true,
      magic_link_enabled: true,
      passkey_enabled: false,
      client_team_creation_enabled: false,
      client_user_deletion_enabled: false,
      allow_user_api_keys: false,
      allow_team_api_keys: false,
      oauth_providers: OAUTH_PROVIDERS.map((id) => ({ id, type: id })),
      enabled_oauth_providers: OAUTH_PROVIDERS.map((id) => ({ id })),
      domains: TRUSTED_DOMAINS.map((domain) => ({ domain, handler_path: '/handler' })),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation (the real backend validates every request against a yup schema and rejects unknown
// body and query fields)

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function isUrl(s) {
  try {
    new URL(s); // eslint-disable-line no-new
    return !/\s/.test(s);
  } catch {
    return false;
  }
}

const TYPES = {
  string: (v) => typeof v === 'string',
  'string?': (v) => v === null || typeof v === 'string',
  bool: (v) => typeof v === 'boolean',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  'object?': (v) => v === null || (typeof v === 'object' && !Array.isArray(v)),
  email: (v) => typeof v === 'string' && EMAIL_RE.test(v),
  url: (v) => typeof v === 'string' && isUrl(v),
  'uuid?': (v) => v === null || (typeof v === 'string' && UUID_RE.test(v)),
};

/** Validates `obj` (body or query) against `spec` {name: [type, required]}; collects problems. */
function validateFields(where, obj, spec, problems, allowUnknown = false) {
  for (const [name, [type, required]] of Object.entries(spec)) {
    const v = obj[name];
    if (v === undefined) {
      if (required) problems.push(`${where}.${name} must be defined`);
    } else if (!TYPES[type](v)) {
      problems.push(`${where}.${name} is not a valid ${type.replace('?', '')}`);
    }
  }
  if (!allowUnknown) {
    for (const key of Object.keys(obj)) {
      if (!(key in spec)) problems.push(`${where} contains unknown properties: ${key}`);
    }
  }
}

/** Stack's `isLocalhost`: `localhost`, `*.localhost` and `127.x.x.x`, any scheme and port; not `[::1]`. */
function isLocalhost(u) {
  return u.hostname === 'localhost' || u.hostname.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(u.hostname);
}

const DEFAULT_PORTS = { 'http:': '80', 'https:': '443' };
const portOf = (u) => u.port || DEFAULT_PORTS[u.protocol] || '';

/**
 * Stack's `validateRedirectUrl`: a localhost address (the fixture project allows localhost), or a
 * trusted domain with the same scheme, host and port.
 */
function redirectAllowed(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (isLocalhost(u)) return true;
  return TRUSTED_DOMAINS.some((d) => {
    const t = new URL(d);
    return u.protocol === t.protocol && u.hostname === t.hostname && portOf(u) === portOf(t);
  });
}

/** `isAcceptedNativeAppUrl`: the mobile SDKs' OAuth scheme, accepted without a trusted domain. */
function isNativeAppUrl(url) {
  try {
    return new URL(url).protocol === 'stack-auth-mobile-oauth-url:';
  } catch {
    return false;
  }
}

const oauthRedirectAllowed = (url) => redirectAllowed(url) || isNativeAppUrl(url);

/** The request's cookies by name. */
function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/**
 * Stack's bot-challenge assessment of an OAuth start (`verifyTurnstileTokenWithOptionalVisibleChallenge`):
 * without `bot_challenge_phase` (legacy clients) it is only recorded; in the invisible phase a
 * failed token asks for a visible challenge, in the visible phase it fails. Returns whether the
 * challenge passed; the fake's siteverify passes Cloudflare's test token only.
 */
function botChallengePassed(query) {
  const passed = (query.bot_challenge_token ?? '').trim() === TURNSTILE_PASSING_TOKEN;
  if (query.bot_challenge_phase === 'invisible' && !passed) throw K.botRequired();
  if (query.bot_challenge_phase === 'visible' && !passed) throw K.botFailed();
  return passed;
}

const upstreamClientId = (provider) => `fake-${provider}-client`;
const callbackUrl = (provider) => `${BASE_URL}/api/v1/auth/oauth/callback/${provider}`;

/** The user an upstream account signs in: the one with that e-mail, or a new one (a sign-up). */
function oauthUser(email, provider, botPassed) {
  let user = userByEmail(email);
  if (!user) {
    if (SIGN_UP_NEEDS_BOT_CHECK && !botPassed) throw K.signUpRejected();
    user = addUser({ id: uuid(), email, display_name: null });
  }
  if (!user.oauth_providers.some((p) => p.id === provider)) {
    user.oauth_providers.push({ id: provider, account_id: `${provider}-${user.id.slice(0, 8)}`, email: user.email });
  }
  return user;
}

/**
 * Stack's `/auth/oauth/callback/{provider}`: where the upstream provider sends the browser back.
 * Checks the flow (single use, its inner-state cookie in redirect mode, 10 minutes), the upstream
 * answer, and only now the return address (`oauthServer.authorize` → `validateRedirectUri`); then
 * redirects to the client's `redirect_uri` with `code` and `state`. A known error goes to
 * `error_redirect_uri` when that is trusted, else it is the page the browser shows.
 */
function oauthCallback({ req, query, body, match }) {
  const params = { ...query, ...(typeof body === 'object' && body !== null ? body : {}) };
  const innerState = params.state ?? '';
  const flow = outerFlows.get(innerState);
  if (!flow || flow.used) throw new StatusError(400, 'Invalid OAuth cookie. Please try signing in again.');
  const headers = {};
  if (flow.responseMode !== 'json') {
    const cookie = `stack-oauth-inner-${innerState}`;
    if (cookies(req)[cookie] !== 'true') {
      throw new StatusError(400, 'Inner OAuth cookie not found. This is likely because you refreshed the page during the OAuth sign in process. Please try signing in again');
    }
    headers['set-cookie'] = `${cookie}=; Path=/; Max-Age=0`;
  }
  flow.used = true;
  try {
    if (clock.nowMs() >= flow.expiresAt) throw K.outerTimeout();
    if (match[1] !== flow.provider) throw K.oauthProvider();
    if (params.error === 'access_denied') throw K.oauthAccessDenied();
    const answer = upstreamCodes.get(params.code);
    if (params.error !== undefined || !answer || answer.used || answer.innerState !== innerState) {
      throw new StatusError(400, 'The OAuth provider did not complete the sign-in. Please try signing in again.');
    }
    answer.used = true;
    if (!oauthRedirectAllowed(flow.redirectUri)) throw K.redirect();
    if (flow.responseType !== 'code') throw new OAuthError(400, 'unsupported_response_type', 'Unsupported response type: `response_type` is not supported');
    if (!['S256', 'plain'].includes(flow.method)) throw new OAuthError(400, 'invalid_request', 'Invalid parameter: `code_challenge_method`');
    const user = oauthUser(answer.email, flow.provider, flow.botPassed);
    const code = randomAlnum(40);
    authCodes.set(code, {
      userId: user.id,
      redirectUri: flow.redirectUri,
      challenge: flow.challenge,
      method: flow.method,
      scope: flow.scope,
      after: flow.after,
      expiresAt: clock.nowMs() + AUTH_CODE_TTL_MS,
      used: false,
    });
    const location = new URL(flow.redirectUri);
    location.searchParams.set('code', code);
    location.searchParams.set('state', flow.state);
    console.error(`[stack] oauth/${flow.provider} signs in ${user.email}; back to ${location}`);
    return [req.method === 'POST' ? 303 : 307, null, { ...headers, location: location.toString() }];
  } catch (err) {
    if (err instanceof KnownError && flow.errorRedirectUrl && redirectAllowed(flow.errorRedirectUrl)) {
      const location = new URL(flow.errorRedirectUrl);
      location.searchParams.set('errorCode', err.code);
      location.searchParams.set('message', err.message);
      location.searchParams.set('details', JSON.stringify(err.details ?? {}));
      return [307, null, { ...headers, location: location.toString() }];
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoints. `auth`: 'client' (needs the client headers) or 'none' (browser navigations, the OAuth
// token endpoint and the JWKS, which the real backend also serves without project headers).
// `body`: field spec, `'none'` (no fields allowed; absent or {}), `'any'` (unchecked), or undefined
// (GET). `openQuery`: unknown query parameters are allowed.

const ROUTES = [
  {
    method: 'POST', path: /^\/auth\/password\/sign-in$/, auth: 'client',
    body: { email: ['email', true], password: ['string', true] },
    handler: ({ body }) => {
      const user = userByEmail(body.email);
      if (!user || !user.password || user.password !== body.password) throw K.emailPassword();
      const { rt, accessToken } = signInOrMfa(user);
      return [200, { access_token: accessToken, refresh_token: rt.token, user_id: user.id }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/otp\/send-sign-in-code$/, auth: 'client',
    body: { email: ['email', true], callback_url: ['url', true] },
    handler: ({ body }) => {
      if (!redirectAllowed(body.callback_url)) throw K.redirect();
      const email = body.email.toLowerCase();
      const code = newVerificationCode({ kind: 'otp_sign_in', email, expiresAt: clock.nowMs() + VERIFICATION_CODE_TTL_MS });
      const link = new URL(body.callback_url);
      link.searchParams.set('code', code);
      const nonce = code.slice(6);
      outbox.push({
        to: email, kind: 'otp_sign_in', link: link.toString(), code, otp: code.slice(0, 6).toUpperCase(), nonce, at: new Date(clock.nowMs()).toISOString(),
      });
      console.error(`[stack] sign-in code for ${email}: ${code.slice(0, 6).toUpperCase()} (${link})`);
      return [200, { nonce }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/otp\/sign-in$/, auth: 'client',
    body: { code: ['string', true] },
    handler: ({ body, path }) => {
      if (body.code.length !== 45) throw K.schema(path, ['body.code must be exactly 45 characters']);
      const vc = useVerificationCode(body.code, 'otp_sign_in');
      let user = userByEmail(vc.email);
      let isNew = false;
      if (!user) {
        user = addUser({ id: uuid(), email: vc.email, display_name: null });
        isNew = true;
      }
      const { rt, accessToken } = signInOrMfa(user);
      return [200, { access_token: accessToken, refresh_token: rt.token, is_new_user: isNew, user_id: user.id }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/mfa\/sign-in$/, auth: 'client',
    body: { type: ['string', true], totp: ['string', true], code: ['string', true] },
    handler: ({ body, path }) => {
      if (body.type !== 'totp') throw K.schema(path, ['body.type must be one of the following values: totp']);
      if (body.code.length !== 45) throw K.schema(path, ['body.code must be exactly 45 characters']);
      const code = body.code.toLowerCase();
      const vc = verificationCodes.get(code);
      if (!vc || vc.kind !== 'mfa_attempt') throw K.codeNotFound();
      if (vc.expiresAt < clock.nowMs()) throw K.codeExpired();
      if (vc.usedAt) throw K.codeUsed();
      const user = users.get(vc.userId);
      const now = clock.nowMs();
      if (![-1, 0, 1].some((step) => totp(user.totp_secret, now, step) === body.totp)) throw K.invalidTotp();
      vc.usedAt = now;
      const { rt, accessToken } = createSession(user);
      return [200, { access_token: accessToken, refresh_token: rt.token, is_new_user: false, user_id: user.id }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/anonymous\/sign-up$/, auth: 'client', body: 'none',
    handler: () => {
      const user = addUser({ id: uuid(), email: null, display_name: null, is_anonymous: true, otp_auth_enabled: false });
      const { rt, accessToken } = createSession(user);
      return [200, { access_token: accessToken, refresh_token: rt.token, user_id: user.id }];
    },
  },
  {
    // Unknown query parameters are allowed (`noUnknown(false)`); the return address is checked at
    // the callback, after the upstream provider, not here.
    method: 'GET', path: /^\/auth\/oauth\/authorize\/([^/]+)$/, auth: 'none', openQuery: true,
    query: {
      type: ['string'], token: ['string'], provider_scope: ['string'], error_redirect_url: ['url'],
      error_redirect_uri: ['url'], after_callback_redirect_url: ['url'], stack_response_mode: ['string'],
      bot_challenge_token: ['string'], bot_challenge_phase: ['string'],
      client_id: ['string', true], client_secret: ['string', true], redirect_uri: ['url', true],
      scope: ['string', true], state: ['string', true], grant_type: ['string', true],
      code_challenge: ['string', true], code_challenge_method: ['string', true], response_type: ['string', true],
    },
    handler: ({ query, match, path }) => {
      const problems = [];
      if (query.grant_type !== 'authorization_code') problems.push('query.grant_type must be one of the following values: authorization_code');
      if (query.type !== undefined && !['authenticate', 'link'].includes(query.type)) problems.push('query.type must be one of the following values: authenticate, link');
      if (query.stack_response_mode !== undefined && !['json', 'redirect'].includes(query.stack_response_mode)) problems.push('query.stack_response_mode must be one of the following values: json, redirect');
      if (query.bot_challenge_phase !== undefined && !['invisible', 'visible'].includes(query.bot_challenge_phase)) problems.push('query.bot_challenge_phase must be one of the following values: invisible, visible');
      if (problems.length) throw K.schema(path, problems);
      if (query.client_id !== PROJECT_ID && query.client_id !== `${PROJECT_ID}#${BRANCH_ID}`) throw K.oauthClient(query.client_id);
      if (query.client_secret === PUBLIC_CLIENT_SENTINEL) throw K.keyRequired(PROJECT_ID);
      if (query.client_secret !== PUBLISHABLE_KEY) throw K.invalidKey(PROJECT_ID);
      const provider = match[1];
      if (!OAUTH_PROVIDERS.includes(provider)) throw K.oauthProvider();
      if (query.type === 'link' && !query.token) throw new StatusError(400, '?token= query parameter is required for link type');
      if (query.token !== undefined) {
        throw new StatusError(400, 'token= (linking an account or upgrading an anonymous user) is not emulated by the fake');
      }
      if (query.after_callback_redirect_url !== undefined && !oauthRedirectAllowed(query.after_callback_redirect_url)) throw K.redirect();
      const botPassed = botChallengePassed(query);
      const innerState = randomToken(32);
      const responseMode = query.stack_response_mode ?? 'redirect';
      outerFlows.set(innerState, {
        provider,
        redirectUri: query.redirect_uri.split('#')[0],
        state: query.state,
        scope: query.scope,
        challenge: query.code_challenge,
        method: query.code_challenge_method,
        responseType: query.response_type,
        errorRedirectUrl: query.error_redirect_uri ?? query.error_redirect_url,
        after: query.after_callback_redirect_url,
        botPassed,
        responseMode,
        expiresAt: clock.nowMs() + OUTER_OAUTH_TTL_MS,
        used: false,
      });
      const upstream = new URL(`${BASE_URL}/upstream/${provider}/authorize`);
      upstream.searchParams.set('client_id', upstreamClientId(provider));
      upstream.searchParams.set('redirect_uri', callbackUrl(provider));
      upstream.searchParams.set('response_type', 'code');
      upstream.searchParams.set('state', innerState);
      if (responseMode === 'json') return [200, { location: upstream.toString() }];
      return [307, null, {
        location: upstream.toString(),
        'set-cookie': `stack-oauth-inner-${innerState}=true; Path=/; HttpOnly; Max-Age=${OUTER_OAUTH_TTL_MS / 1000}`,
      }];
    },
  },
  { method: 'GET', path: /^\/auth\/oauth\/callback\/([^/]+)$/, auth: 'none', openQuery: true, handler: oauthCallback },
  { method: 'POST', path: /^\/auth\/oauth\/callback\/([^/]+)$/, auth: 'none', openQuery: true, body: 'any', handler: oauthCallback },
  {
    method: 'POST', path: /^\/auth\/oauth\/token$/, auth: 'none', body: 'form',
    handler: ({ body, path }) => {
      const problems = [];
      validateFields('body', body, { grant_type: ['string', true], client_id: ['string'], client_secret: ['string'] }, problems, true);
      if (body.grant_type !== undefined && !['authorization_code', 'refresh_token'].includes(body.grant_type)) {
        problems.push('body.grant_type must be one of the following values: authorization_code, refresh_token');
      }
      if (problems.length) throw K.schema(path, problems);
      if (body.client_id !== undefined) {
        if (body.client_id !== PROJECT_ID && body.client_id !== `${PROJECT_ID}#${BRANCH_ID}`) throw K.oauthClient(body.client_id);
        if (body.client_secret === undefined) throw K.keyRequired(PROJECT_ID);
        if (body.client_secret !== PUBLISHABLE_KEY) throw K.oauthClient(body.client_id);
      } else {
        throw K.oauthClient(undefined);
      }
      if (body.grant_type === 'refresh_token') {
        if (!body.refresh_token) throw new OAuthError(400, 'invalid_request', 'Missing parameter: `refresh_token`');
        const rt = liveRefreshToken(body.refresh_token);
        const user = users.get(rt.userId);
        return [200, {
          access_token: mintAccessToken(user, rt),
          token_type: 'Bearer',
          expires_in: ACCESS_TTL,
          refresh_token: rt.token,
          scope: 'legacy',
        }];
      }
      if (!body.code) throw new OAuthError(400, 'invalid_request', 'Missing parameter: `code`');
      const ac = authCodes.get(body.code);
      if (!ac || ac.used || clock.nowMs() >= ac.expiresAt) throw K.invalidAuthCode();
      if (body.redirect_uri !== ac.redirectUri) {
        throw new StatusError(400, 'Invalid redirect URI. Your redirect URI must be the same as the one used to get the authorization code.');
      }
      if (!body.code_verifier) throw K.invalidAuthCode();
      const derived = ac.method === 'S256' ? sha256b64url(body.code_verifier) : body.code_verifier;
      if (derived !== ac.challenge) throw K.invalidAuthCode();
      ac.used = true;
      const user = users.get(ac.userId);
      const { rt, accessToken } = createSession(user);
      const out = {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: ACCESS_TTL,
        refresh_token: rt.token,
        scope: ac.scope,
        is_new_user: false,
      };
      if (ac.after !== undefined) out.after_callback_redirect_url = ac.after;
      return [200, out];
    },
  },
  {
    method: 'POST', path: /^\/auth\/sessions\/current\/refresh$/, auth: 'client', body: 'none',
    handler: ({ req, path }) => {
      const header = req.headers['x-stack-refresh-token'];
      if (header === undefined) throw K.schema(path, ['headers.x-stack-refresh-token must be defined']);
      const rt = liveRefreshToken(header);
      return [200, { access_token: mintAccessToken(users.get(rt.userId), rt) }];
    },
  },
  {
    method: 'DELETE', path: /^\/auth\/sessions\/current$/, auth: 'client', body: 'none',
    handler: ({ auth }) => {
      if (!auth.refreshTokenId) throw K.atExpired(clock.nowMs());
      const rt = refreshTokensById.get(auth.refreshTokenId);
      if (!rt) throw K.rtNotFound();
      refreshTokensById.delete(rt.id);
      refreshTokens.delete(rt.token);
      return [200, { success: true }];
    },
  },
  {
    method: 'GET', path: /^\/users\/me$/, auth: 'client',
    handler: ({ auth }) => {
      if (!auth.user) throw K.noUser();
      return [200, userObject(auth.user)];
    },
  },
  {
    method: 'PATCH', path: /^\/users\/me$/, auth: 'client',
    body: {
      display_name: ['string?'], profile_image_url: ['string?'], client_metadata: ['object?'],
      selected_team_id: ['uuid?'], otp_auth_enabled: ['bool'], passkey_auth_enabled: ['bool'],
    },
    handler: ({ auth, body }) => {
      if (!auth.user) throw K.noUser();
      const u = auth.user;
      if (body.selected_team_id !== undefined && body.selected_team_id !== null) {
        if (!TEAMS.has(body.selected_team_id)) throw K.teamNotFound(body.selected_team_id);
        if (!u.teams.includes(body.selected_team_id)) throw K.membershipNotFound(body.selected_team_id, u.id);
      }
      for (const k of Object.keys(body)) u[k] = body[k];
      return [200, userObject(u)];
    },
  },
  {
    method: 'GET', path: /^\/teams$/, auth: 'client',
    query: { user_id: ['string'] },
    handler: ({ auth, query }) => {
      if (query.user_id === 'me' && !auth.user) throw K.noUser();
      if (!auth.user || (query.user_id !== 'me' && query.user_id !== auth.user.id)) {
        throw new StatusError(403, 'Client can only list teams for their own user. user_id must be either "me" or the ID of the current user');
      }
      return [200, { items: auth.user.teams.map(teamObject), is_paginated: false }];
    },
  },
  {
    method: 'GET', path: /^\/projects\/current$/, auth: 'client',
    handler: () => [200, projectObject()],
  },
  {
    method: 'GET', path: /^\/projects\/([^/]+)\/\.well-known\/jwks\.json$/, auth: 'none',
    query: { include_anonymous: ['string'], include_restricted: ['string'] },
    handler: ({ match, query, path }) => {
      const problems = [];
      for (const name of ['include_anonymous', 'include_restricted']) {
        if (query[name] !== undefined && !['true', 'false'].includes(query[name])) {
          problems.push(`query.${name} must be one of the following values: true, false`);
        }
      }
      if (problems.length) throw K.schema(path, problems);
      if (match[1] !== PROJECT_ID) throw new StatusError(404, 'Project not found');
      // include_anonymous implies include_restricted ("anonymous users are less authenticated").
      const anonymous = query.include_anonymous === 'true';
      const restricted = anonymous || query.include_restricted === 'true';
      const keys = [
        ...signingKeys,
        ...(restricted ? restrictedKeys : []),
        ...(anonymous ? anonKeys : []),
      ].map((k) => k.publicJwk);
      return [200, { keys }, { 'cache-control': 'public, max-age=3600' }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/cli$/, auth: 'client',
    body: { expires_in_millis: ['number'], anon_refresh_token: ['string'] },
    handler: ({ body }) => {
      const ttl = Math.min(body.expires_in_millis ?? 2 * 3600 * 1000, 24 * 3600 * 1000);
      const pollingCode = randomAlnum(45);
      const loginCode = randomAlnum(45);
      const expiresAt = clock.nowMs() + ttl;
      cliLogins.set(pollingCode, { loginCode, expiresAt, refreshToken: null, status: 'waiting' });
      return [200, { polling_code: pollingCode, login_code: loginCode, expires_at: new Date(expiresAt).toISOString() }];
    },
  },
  {
    method: 'POST', path: /^\/auth\/cli\/poll$/, auth: 'client',
    body: { polling_code: ['string', true] },
    handler: ({ body }) => {
      const c = cliLogins.get(body.polling_code);
      if (!c) throw K.pollingCode();
      if (c.status === 'waiting' && clock.nowMs() >= c.expiresAt) c.status = 'expired';
      if (c.status === 'success') {
        c.status = 'used';
        return [201, { status: 'success', refresh_token: c.refreshToken }];
      }
      return [200, { status: c.status }];
    },
  },
];

// ---------------------------------------------------------------------------------------------
// The request pipeline: parse body → authenticate headers → validate → handler

function parseRequestBody(req, raw) {
  if (req.method === 'GET') return undefined;
  const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const text = raw.toString('utf8');
  switch (contentType) {
    case '':
      return undefined;
    case 'application/json':
      try {
        return JSON.parse(text);
      } catch {
        throw K.bodyParsing('Invalid JSON in request body');
      }
    case 'application/x-www-form-urlencoded':
      return Object.fromEntries(new URLSearchParams(text).entries());
    case 'text/plain':
      return text;
    default:
      throw K.bodyParsing(`Unknown content type in request body: ${contentType}`);
  }
}

function parseAuth(req) {
  const h = (name) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const projectId = h('x-stack-project-id');
  const accessType = h('x-stack-access-type');
  const publishable = h('x-stack-publishable-client-key');
  const serverKey = h('x-stack-secret-server-key');
  const adminKey = h('x-stack-super-secret-admin-key');
  const adminToken = h('x-stack-admin-access-token');
  const accessToken = h('x-stack-access-token');
  const branchId = h('x-stack-branch-id') ?? BRANCH_ID;

  if (!accessType && (publishable || serverKey || adminKey || adminToken)) throw K.keyWithoutAccessType();
  if (!accessType) return null;
  if (!['client', 'server', 'admin'].includes(accessType)) throw K.invalidAccessType(accessType);
  if (!projectId) throw K.accessTypeWithoutProjectId(accessType);

  // As the real pipeline: the token is decoded, and anonymous / restricted users refused unless
  // the client allows them, before the keys are checked.
  let decoded = null;
  if (accessToken) {
    decoded = decodeAccessToken(accessToken);
    const allowAnonymous = h('x-stack-allow-anonymous-user') === 'true';
    const allowRestricted = allowAnonymous || h('x-stack-allow-restricted-user') === 'true';
    if (decoded.anon && !allowAnonymous) throw K.anonNotAllowed();
    if (decoded.restrictedReason && !allowRestricted) throw K.restrictedNotAllowed(decoded.restrictedReason);
  }

  if (accessType === 'client') {
    if (!publishable) throw K.keyRequired(projectId);
    if (projectId !== PROJECT_ID || publishable !== PUBLISHABLE_KEY) throw K.invalidKey(projectId);
  } else if (accessType === 'server') {
    throw K.invalidServerKey(projectId); // the fake has no server keys
  } else {
    throw K.invalidAdminKey(projectId); // … and no admin keys
  }
  if (branchId !== BRANCH_ID) throw K.branch(branchId);

  const user = decoded ? users.get(decoded.userId) : undefined;
  return { type: accessType, user, refreshTokenId: decoded?.refreshTokenId };
}

function describeHeaders(req) {
  const present = (n) => (req.headers[n] !== undefined ? 'present' : null);
  const value = (n) => req.headers[n] ?? null;
  return {
    'x-stack-project-id': value('x-stack-project-id'),
    'x-stack-access-type': value('x-stack-access-type'),
    'x-stack-publishable-client-key': value('x-stack-publishable-client-key'),
    'x-stack-branch-id': value('x-stack-branch-id'),
    'x-stack-client-version': value('x-stack-client-version'),
    'x-stack-override-error-status': value('x-stack-override-error-status'),
    'x-stack-allow-anonymous-user': value('x-stack-allow-anonymous-user'),
    'x-stack-allow-restricted-user': value('x-stack-allow-restricted-user'),
    'x-stack-access-token': present('x-stack-access-token'),
    'x-stack-refresh-token': present('x-stack-refresh-token'),
    'x-stack-secret-server-key': present('x-stack-secret-server-key'),
    'content-type': value('content-type'),
  };
}

const NOT_FOUND_TEXT = (url) => `404 — this page does not exist in Stack Auth's API.

Please see the API documentation at https://docs.stack-auth.com, or visit the Stack Auth dashboard at https://app.stack-auth.com.

URL: ${url}
`;

async function route(req, url, raw) {
  const apiPath = url.pathname.startsWith('/api/v1/') ? url.pathname.slice('/api/v1'.length) : null;
  const candidates = apiPath === null ? [] : ROUTES.filter((r) => r.path.test(apiPath));
  const r = candidates.find((c) => c.method === req.method);
  if (!r) {
    if (candidates.length) throw new StatusError(405, 'Method not allowed');
    return [404, NOT_FOUND_TEXT(`${BASE_URL}${url.pathname}${url.search}`)];
  }
  const path = `${req.method} ${url.pathname}`;
  const match = r.path.exec(apiPath);

  let body = parseRequestBody(req, raw);
  const auth = parseAuth(req);
  if (r.auth === 'client' && !auth) throw K.accessTypeRequired();

  const query = Object.fromEntries(url.searchParams.entries());
  const problems = [];
  validateFields('query', query, r.query ?? {}, problems, r.openQuery === true);
  if (r.body === 'form') {
    if (typeof body !== 'object' || body === null || (req.headers['content-type'] ?? '').split(';')[0].trim() !== 'application/x-www-form-urlencoded') {
      throw new OAuthError(400, 'invalid_request', 'Invalid request: content must be application/x-www-form-urlencoded');
    }
  } else if (r.body === 'any') {
    body = body ?? {};
  } else if (r.body === 'none') {
    if (body !== undefined) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) problems.push('body must be a `object` type');
      else validateFields('body', body, {}, problems);
    }
    body = {};
  } else if (r.body) {
    if (body === undefined) problems.push('body must be defined');
    else if (typeof body !== 'object' || body === null || Array.isArray(body)) problems.push('body must be a `object` type');
    else validateFields('body', body, r.body, problems);
  }
  if (problems.length) throw K.schema(path, problems);

  return r.handler({ req, url, body, query, auth: auth ?? {}, match, path });
}

// ---------------------------------------------------------------------------------------------
// The stand-in upstream OAuth provider (GitHub, Google, …): not Stack's API

const UPSTREAM_RE = /^\/upstream\/([^/]+)\/(?:(authorize)|interaction\/([^/]+)(\/login|\/abort)?)$/;
/** The password the upstream login page accepts for any account (the fixture's password). */
const UPSTREAM_PASSWORD = 'demo';

const escapeHtml = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function upstreamLoginPage(res, provider, uid, problem) {
  const base = `/upstream/${provider}/interaction/${uid}`;
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to ${escapeHtml(provider)} (stand-in)</title></head>
<body>
<h1>Sign in to ${escapeHtml(provider)} to continue to the Stack Auth project</h1>
${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="${base}/login">
<label>E-mail <input name="login" type="email" autofocus></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button>
</form>
<p><a href="${base}/abort">Cancel</a></p>
</body></html>
`;
  return sendText(res, 200, html, { 'content-type': 'text/html; charset=utf-8' });
}

/**
 * Where Stack's authorize endpoint sends the browser. A person already signed in there (the test's
 * `oauthIdentity`, alice by default) comes straight back, as with a provider that remembers an
 * earlier approval; otherwise the page asks, in the shape the test browser knows
 * (`…/interaction/{uid}`, `POST …/login` with `login` and `password`, `GET …/abort`). Either way
 * the browser goes back to Stack's callback with `code` and `state`, or `error=access_denied`.
 */
async function upstream(req, res, url) {
  const m = UPSTREAM_RE.exec(url.pathname);
  if (!m || !OAUTH_PROVIDERS.includes(m[1])) return sendText(res, 404, 'No such page at the upstream provider.');
  const provider = m[1];
  const back = (params) => {
    const to = new URL(callbackUrl(provider));
    for (const [k, v] of Object.entries(params)) to.searchParams.set(k, v);
    res.writeHead(302, { location: to.toString() });
    res.end();
  };
  const signIn = (email, innerState) => {
    const code = randomToken(24);
    upstreamCodes.set(code, { email, innerState, used: false });
    back({ code, state: innerState });
  };
  if (m[2]) {
    const q = url.searchParams;
    if (req.method !== 'GET' || q.get('client_id') !== upstreamClientId(provider)
        || q.get('redirect_uri') !== callbackUrl(provider) || q.get('response_type') !== 'code' || !q.get('state')) {
      return sendText(res, 400, 'The upstream provider refuses this authorization request.');
    }
    if (oauthIdentity) return signIn(oauthIdentity, q.get('state'));
    const uid = randomToken(16);
    upstreamLogins.set(uid, { provider, innerState: q.get('state') });
    res.writeHead(302, { location: `${BASE_URL}/upstream/${provider}/interaction/${uid}` });
    return res.end();
  }
  const uid = m[3];
  const login = upstreamLogins.get(uid);
  if (!login || login.provider !== provider) return sendText(res, 404, 'No such sign-in at the upstream provider.');
  if (m[4] === '/abort') {
    upstreamLogins.delete(uid);
    return back({ error: 'access_denied', state: login.innerState });
  }
  if (m[4] === '/login') {
    if (req.method !== 'POST') return sendText(res, 405, 'Method not allowed');
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const email = (form.get('login') ?? '').toLowerCase();
    if (!EMAIL_RE.test(email) || form.get('password') !== UPSTREAM_PASSWORD) {
      return upstreamLoginPage(res, provider, uid, 'Wrong e-mail or password.');
    }
    upstreamLogins.delete(uid);
    return signIn(email, login.innerState);
  }
  return upstreamLoginPage(res, provider, uid);
}

// ---------------------------------------------------------------------------------------------
// Test hooks

/** A test hook's JSON body, or `null` when it is not JSON. */
async function hookBody(req) {
  try {
    return JSON.parse((await readBody(req)).toString('utf8') || '{}');
  } catch {
    return null;
  }
}

const testHook = testHooks({
  name: 'stack',
  clock,
  timestamp: () => new Date(clock.nowMs()).toISOString(),
  outbox,
  requestLog,
  signingKeys,
  newKey: () => stackKey('stack'),
  extra: {
    'POST /__test/oauth_user': async (req, res) => {
      const b = await hookBody(req);
      if (!b || !(b.email === null || (typeof b.email === 'string' && EMAIL_RE.test(b.email)))) {
        return sendJson(res, 400, { error: 'body must be {"email": E} (an address, or null for the login page)' });
      }
      oauthIdentity = b.email === null ? null : b.email.toLowerCase();
      return sendJson(res, 200, { email: oauthIdentity });
    },
    'POST /__test/verify_email': async (req, res) => {
      const b = await hookBody(req);
      const user = b && typeof b.email === 'string' ? userByEmail(b.email) : undefined;
      if (!user) return sendJson(res, 400, { error: 'body must be {"email": E} naming a known user' });
      user.email_verified = true;
      return sendJson(res, 200, { email: user.email });
    },
    'GET /__test/totp': (req, res, url) => {
      const user = userByEmail(url.searchParams.get('email') ?? '');
      if (!user || !user.totp_secret) return sendJson(res, 404, { error: 'no TOTP user with that email' });
      return sendJson(res, 200, { totp: totp(user.totp_secret, clock.nowMs()) });
    },
    'POST /__test/cli/approve': async (req, res) => {
      const b = await hookBody(req);
      const user = b && typeof b.email === 'string' ? userByEmail(b.email) : undefined;
      const entry = b && [...cliLogins.values()].find((c) => c.loginCode === b.login_code);
      if (!user || !entry || entry.status !== 'waiting') {
        return sendJson(res, 400, { error: 'body must be {"login_code": C, "email": E} for a waiting CLI login' });
      }
      entry.refreshToken = createSession(user).rt.token;
      entry.status = 'success';
      return sendJson(res, 200, {});
    },
  },
});

// ---------------------------------------------------------------------------------------------
// Dispatch

async function handle(req, res, url) {
  if (url.pathname.startsWith('/__test/')) return testHook(req, res, url);
  if (url.pathname.startsWith('/upstream/')) return upstream(req, res, url);
  const raw = await readBody(req);
  const entry = {
    method: req.method,
    path: url.pathname,
    query: url.search ? url.search.slice(1) : '',
    headers: describeHeaders(req),
    body_fields: [],
    at: new Date(clock.nowMs()).toISOString(),
  };
  try {
    const text = raw.toString('utf8');
    const ct = (req.headers['content-type'] ?? '').split(';')[0].trim();
    if (ct === 'application/json' && text) entry.body_fields = Object.keys(JSON.parse(text) ?? {});
    if (ct === 'application/x-www-form-urlencoded') entry.body_fields = [...new URLSearchParams(text).keys()];
  } catch {
    // unparsable bodies are reported by the pipeline
  }

  let status;
  let body;
  let headers = {};
  try {
    [status, body, headers = {}] = await route(req, url, raw);
  } catch (err) {
    if (err instanceof KnownError) {
      status = err.status;
      body = { code: err.code, ...(err.details ? { details: err.details } : {}), error: err.message };
      headers = { 'x-stack-known-error': err.code };
      entry.known_error = err.code;
    } else if (err instanceof OAuthError) {
      status = err.status;
      body = { error: err.error, error_description: err.message };
      entry.oauth_error = err.error;
    } else if (err instanceof StatusError) {
      status = err.status;
      body = err.message;
    } else {
      throw err;
    }
  }
  const requestIdHeader = { 'x-stack-request-id': uuid(), 'cache-control': 'no-store, max-age=0', ...headers };
  entry.status = status;
  if (req.headers['x-stack-override-error-status'] !== undefined && status >= 400 && status < 500) {
    requestIdHeader['x-stack-actual-status'] = String(status);
    status = 200;
  }
  requestLog.push(entry);
  console.error(`[stack] ${req.method} ${url.pathname} -> ${entry.status}${entry.known_error ? ` ${entry.known_error}` : ''}`);
  if (body === null) {
    res.writeHead(status, requestIdHeader);
    res.end();
  } else if (typeof body === 'string') {
    sendText(res, status, body, requestIdHeader);
  } else {
    sendJson(res, status, body, requestIdHeader);
  }
}

serve({
  port: opts.port,
  name: 'stack',
  handler: handle,
  readyFields: (baseUrl, port) => {
    BASE_URL = baseUrl;
    return {
      base_url: baseUrl,
      port,
      project_id: PROJECT_ID,
      publishable_key: PUBLISHABLE_KEY,
    };
  },
});
