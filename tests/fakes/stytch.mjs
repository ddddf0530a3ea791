// A fake Stytch B2B API for Tessera's tests: discovery magic links, intermediate sessions, member
// sessions and their JWKS, through both the backend API (`/v1/b2b/...`, Basic project_id:secret)
// and the frontend-SDK API (`/sdk/v1/b2b/...`, Basic public_token:(public_token|session_token),
// success bodies wrapped in `data`). NOT Stytch and NOT for production use: fixed fixture, in-memory
// state, signing key generated at start-up, test hooks under /__test/.
//
//   node tests/fakes/stytch.mjs [--port N] [--redirect-url URL]... [--custom-domain]
//                               [--authorized-app ID]... [--authorized-domain ORIGIN]...
//
// When listening, prints exactly one JSON line on stdout:
//   {"base_url":…,"port":PORT,"project_id":…,"public_token":…,"secret":…,"issuer":…}
// Everything else goes to stderr. What is (and is not) emulated: README.md next to this file;
// the contract it follows: ../../../shared/providers.md §2 and §7.8 (in the Tessera workspace).

import {
  Clock, basicAuth, newSigningKey, parseArgs, randomToken, readBody, sendJson, serve,
  sha256b64url, signJwt, testHooks, uuid, verifyJwtSignature,
} from './common.mjs';

const opts = parseArgs(
  process.argv.slice(2),
  {
    port: { type: 'int', default: 0, min: 0, max: 65535 },
    'redirect-url': { type: 'list', default: ['dev.tessera:/callback'] },
    'custom-domain': { type: 'flag' },
    'authorized-app': { type: 'list', default: ['dev.tessera'] },
    'authorized-domain': { type: 'list', default: [] },
  },
  'node stytch.mjs [--port N (0 = random)] [--redirect-url URL (repeatable; the first is the default)]'
    + ' [--custom-domain] [--authorized-app BUNDLE_ID (repeatable)] [--authorized-domain ORIGIN (repeatable)]',
);

// ---------------------------------------------------------------------------------------------
// Fixture

const PROJECT_ID = 'project-test-11111111-1111-1111-1111-111111111111';
const SECRET = 'secret-test-fake';
const PUBLIC_TOKEN = 'public-token-test-fake';
/**
 * The session JWTs' `iss`: `stytch.com/{project_id}`, or the API base itself when the fake serves
 * as the project's custom domain (`--custom-domain`; set once listening).
 */
let ISSUER = `stytch.com/${PROJECT_ID}`;

/**
 * A redirect URL as Stytch compares it ("URL validation": an exact match including path, port and
 * query; `www.example.com` and `example.com` are the same domain), or `null` if it is no URL.
 */
function redirectKey(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') u.hostname = u.hostname.replace(/^www\./, '');
  return u.href;
}

/** The project's registered discovery redirect URLs; the first is the default. */
const DISCOVERY_REDIRECT_URLS = opts['redirect-url'];
if (DISCOVERY_REDIRECT_URLS.length === 0) {
  console.error('error: at least one --redirect-url is needed (the first is the default)');
  process.exit(2);
}
for (const url of DISCOVERY_REDIRECT_URLS) {
  if (redirectKey(url) === null) {
    console.error(`error: --redirect-url ${JSON.stringify(url)} is not a URL`);
    process.exit(2);
  }
}
const REGISTERED_REDIRECTS = new Set(DISCOVERY_REDIRECT_URLS.map(redirectKey));
const DEFAULT_DISCOVERY_REDIRECT_URL = DISCOVERY_REDIRECT_URLS[0];

/** The SDK configuration's authorized applications (bundle ids) and domains (origins). */
const AUTHORIZED_APPS = opts['authorized-app'];
const AUTHORIZED_DOMAINS = opts['authorized-domain'];

const JWT_TTL_SECONDS = 300;
const IST_TTL_MINUTES = 10;
const MAGIC_LINK_DEFAULT_MINUTES = 60;
const SESSION_DEFAULT_MINUTES = 60;

const clock = new Clock();
const STARTED = clock.iso();

const ORG_BASE = {
  organization_logo_url: '',
  trusted_metadata: {},
  sso_default_connection_id: null,
  sso_jit_provisioning: 'ALL_ALLOWED',
  sso_jit_provisioning_allowed_connections: [],
  sso_active_connections: [],
  scim_active_connection: null,
  email_invites: 'ALL_ALLOWED',
  auth_methods: 'ALL_ALLOWED',
  allowed_auth_methods: [],
  mfa_methods: 'ALL_ALLOWED',
  allowed_mfa_methods: [],
  oauth_tenant_jit_provisioning: 'NOT_ALLOWED',
  allowed_oauth_tenants: {},
  rbac_email_implicit_role_assignments: [],
  created_at: STARTED,
  updated_at: STARTED,
};

function organization(fields) {
  // Identity first, then the settings every organization object carries.
  return { ...fields, ...ORG_BASE };
}

const ORGS = [
  organization({
    organization_id: 'organization-test-a0000000-0000-4000-8000-000000000001',
    organization_name: 'Acme',
    organization_slug: 'acme',
    email_allowed_domains: [],
    email_jit_provisioning: 'NOT_ALLOWED',
    mfa_policy: 'OPTIONAL',
  }),
  organization({
    organization_id: 'organization-test-b0000000-0000-4000-8000-000000000002',
    organization_name: 'Globex',
    organization_slug: 'globex',
    email_allowed_domains: [],
    email_jit_provisioning: 'NOT_ALLOWED',
    mfa_policy: 'REQUIRED_FOR_ALL',
  }),
  organization({
    organization_id: 'organization-test-c0000000-0000-4000-8000-000000000003',
    organization_name: 'Initech',
    organization_slug: 'initech',
    email_allowed_domains: ['example.com'],
    email_jit_provisioning: 'RESTRICTED',
    mfa_policy: 'OPTIONAL',
  }),
];
const ORG = Object.fromEntries(ORGS.map((o) => [o.organization_slug, o]));

const NAMES = { 'alice@example.com': 'Alice Example', 'bob@example.com': 'Bob Example' };

/** member_id → member record. JIT joins (exchange into initech) add to it. */
const members = new Map();
function addMember(memberId, org, email) {
  const m = {
    member_id: memberId,
    organization_id: org.organization_id,
    email_address: email,
    email_id: `email-test-${uuid()}`,
    name: NAMES[email] ?? '',
    status: 'active',
    created_at: clock.iso(),
  };
  members.set(memberId, m);
  return m;
}
addMember('member-test-a1100000-0000-4000-8000-00000000000a', ORG.acme, 'alice@example.com');
addMember('member-test-a1200000-0000-4000-8000-00000000000a', ORG.globex, 'alice@example.com');
addMember('member-test-b0100000-0000-4000-8000-00000000000b', ORG.acme, 'bob@example.com');

/**
 * Who may join which organization by email domain. Scripted per person (alice → initech) so that
 * bob, although also @example.com, has exactly one organization in the fixture.
 */
const ELIGIBLE_BY_DOMAIN = [{ email: 'alice@example.com', org: ORG.initech }];

// ---------------------------------------------------------------------------------------------
// State

const signingKeys = [newSigningKey('RS256', `jwk-test-${uuid()}`)]; // [0] signs; all are published
const magicLinks = new Map(); // token → { email, redirect, challenge, expiresAt, used }
const ists = new Map(); // token → { email, factors, expiresAt, consumed, orgId }
const sessions = new Map(); // session token → session
const sessionsById = new Map(); // member_session_id → session
const outbox = []; // { to, kind, link, token, redirect_url, at }
const requestLog = [];

// ---------------------------------------------------------------------------------------------
// Errors and responses

class StytchError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const requestId = () => `request-id-test-${uuid()}`;

function errorBody(status, type, message) {
  return {
    status_code: status,
    request_id: requestId(),
    error_type: type,
    error_message: message,
    error_url: `https://stytch.com/docs/api/errors/${status}#${type}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Request-body validation: every field must be known and of the right type.

function checkBody(body, spec) {
  for (const key of Object.keys(body)) {
    if (!(key in spec)) {
      throw new StytchError(400, 'bad_request', `Unknown field in request body: ${key}.`);
    }
  }
  const out = {};
  for (const [name, [type, required]] of Object.entries(spec)) {
    const v = body[name];
    if (v === undefined || v === null) {
      if (required) throw new StytchError(400, 'bad_request', `${name} is a required field.`);
      continue;
    }
    const ok = (type === 'string' && typeof v === 'string')
      || (type === 'int' && Number.isInteger(v))
      || (type === 'bool' && typeof v === 'boolean')
      || (type === 'object' && typeof v === 'object' && !Array.isArray(v));
    if (!ok) throw new StytchError(400, 'bad_request', `${name} must be of type ${type}.`);
    if (required && type === 'string' && v === '') {
      throw new StytchError(400, 'bad_request', `${name} is a required field.`);
    }
    out[name] = v;
  }
  return out;
}

function checkDuration(minutes) {
  if (minutes === undefined) return SESSION_DEFAULT_MINUTES;
  if (minutes < 5 || minutes > 527040) {
    throw new StytchError(400, 'invalid_session_duration_minutes',
      'session_duration_minutes must be between 5 and 527040 minutes.');
  }
  return minutes;
}

const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'];
function checkCustomClaims(claims) {
  if (claims === undefined) return undefined;
  for (const k of Object.keys(claims)) {
    if (RESERVED_CLAIMS.includes(k)) {
      throw new StytchError(400, 'reserved_claims_in_custom_claims',
        `session_custom_claims may not contain the reserved claim ${k}.`);
    }
    if (k.startsWith('https://stytch.com/')) {
      throw new StytchError(400, 'stytch_claims_in_custom_claims',
        `session_custom_claims may not contain Stytch claims (${k}).`);
    }
  }
  return claims;
}

function checkLocale(locale) {
  if (locale !== undefined && !['en', 'es', 'fr', 'pt-br'].includes(locale)) {
    throw new StytchError(400, 'invalid_locale', 'locale must be one of en, es, fr, pt-br.');
  }
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

// ---------------------------------------------------------------------------------------------
// Objects as Stytch returns them

function findOrg(ref) {
  const org = ORGS.find((o) => o.organization_id === ref || o.organization_slug === ref);
  if (!org) throw new StytchError(404, 'organization_not_found', 'Organization could not be found.');
  return org;
}

const orgById = (id) => ORGS.find((o) => o.organization_id === id);

function memberOf(email, org) {
  for (const m of members.values()) {
    if (m.email_address === email && m.organization_id === org.organization_id) return m;
  }
  return null;
}

function memberObject(m) {
  return {
    organization_id: m.organization_id,
    member_id: m.member_id,
    email_address: m.email_address,
    status: m.status,
    name: m.name,
    trusted_metadata: {},
    untrusted_metadata: {},
    sso_registrations: [],
    oauth_registrations: [],
    is_breakglass: false,
    member_password_id: '',
    email_address_verified: true,
    retired_email_addresses: [],
    is_locked: false,
    mfa_enrolled: false,
    mfa_phone_number: '',
    mfa_phone_number_verified: false,
    default_mfa_method: '',
    totp_registration_id: '',
    is_admin: false,
    roles: [{ role_id: 'stytch_member', sources: [{ type: 'direct_assignment', details: {} }] }],
    created_at: m.created_at,
    updated_at: m.created_at,
  };
}

const orgObject = (org) => ({ ...org });

function magicLinkFactor(email, emailId, atIso) {
  return {
    type: 'magic_link',
    delivery_method: 'email',
    last_authenticated_at: atIso,
    created_at: atIso,
    updated_at: atIso,
    email_factor: { email_id: emailId, email_address: email },
  };
}

/** The discovered organizations of `email`; `sessionBased` leaves out eligible-to-join entries. */
function discoveredOrganizations(email, sessionBased) {
  const out = [];
  for (const org of ORGS) {
    const m = memberOf(email, org);
    const eligible = ELIGIBLE_BY_DOMAIN.some((e) => e.email === email && e.org === org);
    if (!m && (!eligible || sessionBased)) continue;
    const mfa = org.mfa_policy === 'REQUIRED_FOR_ALL';
    out.push({
      member_authenticated: Boolean(m) && !mfa,
      organization: orgObject(org),
      membership: {
        type: m ? 'active_member' : 'eligible_to_join_by_email_domain',
        details: null,
        member: m ? memberObject(m) : null,
      },
      primary_required: null,
      mfa_required: m && mfa ? { member_options: null, secondary_auth_initiated: null } : null,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sessions and JWTs

const live = (s) => s && !s.revoked && clock.nowMs() < s.expiresAt;

function createSession(member, factors, minutes, customClaims) {
  const now = clock.nowMs();
  const s = {
    id: `member-session-test-${uuid()}`,
    token: randomToken(32),
    member_id: member.member_id,
    organization_id: member.organization_id,
    email: member.email_address,
    startedAt: now,
    lastAccessedAt: now,
    expiresAt: now + minutes * 60_000,
    factors,
    customClaims: customClaims ?? {},
    revoked: false,
  };
  sessions.set(s.token, s);
  sessionsById.set(s.id, s);
  return s;
}

function memberSessionObject(s) {
  const org = orgById(s.organization_id);
  return {
    member_session_id: s.id,
    member_id: s.member_id,
    organization_id: s.organization_id,
    organization_slug: org.organization_slug,
    started_at: clock.iso(s.startedAt),
    last_accessed_at: clock.iso(s.lastAccessedAt),
    expires_at: clock.iso(s.expiresAt),
    authentication_factors: s.factors,
    custom_claims: s.customClaims,
    roles: ['stytch_member'],
  };
}

function mintJwt(s) {
  const iat = clock.nowSec();
  const org = orgById(s.organization_id);
  return signJwt(signingKeys[0], {
    ...s.customClaims,
    aud: [PROJECT_ID],
    exp: iat + JWT_TTL_SECONDS,
    'https://stytch.com/organization': {
      organization_id: org.organization_id,
      slug: org.organization_slug,
    },
    'https://stytch.com/session': {
      id: s.id,
      started_at: clock.iso(s.startedAt),
      last_accessed_at: clock.iso(s.lastAccessedAt),
      expires_at: clock.iso(s.expiresAt),
      attributes: { ip_address: '', user_agent: '' },
      authentication_factors: s.factors,
      roles: ['stytch_member'],
    },
    iat,
    iss: ISSUER,
    nbf: iat,
    sub: s.member_id,
  });
}

/** The session a JWT names (its signature, issuer and audience must check out; `exp` may be past). */
function sessionFromJwt(jwt) {
  const v = verifyJwtSignature(jwt, signingKeys);
  if (!v) throw new StytchError(400, 'unable_to_parse_session_jwt', 'The session_jwt could not be parsed or its signature is invalid.');
  if (v.payload.iss !== ISSUER) throw new StytchError(400, 'jwt_invalid_issuer', 'The session_jwt has an invalid issuer.');
  const aud = Array.isArray(v.payload.aud) ? v.payload.aud : [v.payload.aud];
  if (!aud.includes(PROJECT_ID)) throw new StytchError(400, 'jwt_invalid_audience', 'The session_jwt has an invalid audience.');
  const id = v.payload['https://stytch.com/session']?.id;
  return sessionsById.get(id) ?? null;
}

const SESSION_NOT_FOUND = () => new StytchError(404, 'session_not_found', 'Session could not be found.');

/** Backend: exactly one of `session_token` / `session_jwt` names a live session. */
function sessionFromBody(b) {
  if (b.session_token !== undefined && b.session_jwt !== undefined) {
    throw new StytchError(400, 'too_many_session_arguments', 'Only one of session_token or session_jwt may be passed.');
  }
  let s;
  if (b.session_token !== undefined) s = sessions.get(b.session_token);
  else if (b.session_jwt !== undefined) s = sessionFromJwt(b.session_jwt);
  else throw new StytchError(400, 'no_session_arguments', 'One of session_token or session_jwt must be passed.');
  if (!live(s)) throw SESSION_NOT_FOUND();
  return s;
}

/** SDK: the session named by the password of the Basic header. */
function sdkSession(ctx) {
  const s = ctx.sdkSessionToken ? sessions.get(ctx.sdkSessionToken) : null;
  if (!live(s)) throw SESSION_NOT_FOUND();
  return s;
}

function liveIst(token) {
  const ist = ists.get(token);
  if (!ist || ist.consumed || clock.nowMs() >= ist.expiresAt) {
    throw new StytchError(404, 'intermediate_session_not_found', 'Intermediate session could not be found.');
  }
  return ist;
}

function newIst(email, factors, orgId) {
  const token = randomToken(32);
  const ist = { email, factors, expiresAt: clock.nowMs() + IST_TTL_MINUTES * 60_000, consumed: false, orgId };
  ists.set(token, ist);
  return [token, ist];
}

/** The answer of both exchanges: a full session, or `member_authenticated:false` + an IST. */
function exchangeAnswer({ member, org, session, istToken, ist }) {
  if (session) {
    return {
      member_id: member.member_id,
      member_session: memberSessionObject(session),
      session_token: session.token,
      session_jwt: mintJwt(session),
      member: memberObject(member),
      organization: orgObject(org),
      member_authenticated: true,
      intermediate_session_token: '',
      intermediate_session_token_expires_at: null,
      mfa_required: null,
      primary_required: null,
      member_device: null,
    };
  }
  return {
    member_id: member.member_id,
    member_session: null,
    session_token: '',
    session_jwt: '',
    member: memberObject(member),
    organization: orgObject(org),
    member_authenticated: false,
    intermediate_session_token: istToken,
    intermediate_session_token_expires_at: clock.iso(ist.expiresAt),
    mfa_required: { member_options: null, secondary_auth_initiated: null },
    primary_required: null,
    member_device: null,
  };
}

// ---------------------------------------------------------------------------------------------
// Endpoints. Paths are relative to `/v1/` (backend) or `/sdk/v1/` (SDK).

function redirectRegistered(url) {
  const key = redirectKey(url);
  return key !== null && REGISTERED_REDIRECTS.has(key);
}

function discoverySend(ctx) {
  const b = checkBody(ctx.body, {
    email_address: ['string', true],
    discovery_redirect_url: ['string'],
    pkce_code_challenge: ['string'],
    login_template_id: ['string'],
    locale: ['string'],
    discovery_expiration_minutes: ['int'],
  });
  if (!EMAIL_RE.test(b.email_address)) throw new StytchError(400, 'invalid_email', 'Email format is invalid.');
  const redirect = b.discovery_redirect_url ?? DEFAULT_DISCOVERY_REDIRECT_URL;
  if (!redirectRegistered(redirect)) {
    throw new StytchError(400, 'no_match_for_provided_magic_link_url',
      'The discovery_redirect_url in the request did not match any redirect URLs set for this project.');
  }
  if (b.pkce_code_challenge !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(b.pkce_code_challenge)) {
    throw new StytchError(400, 'invalid_pkce_code_challenge', 'pkce_code_challenge must be a base64url-encoded SHA-256 hash (43 characters).');
  }
  checkLocale(b.locale);
  const minutes = b.discovery_expiration_minutes ?? MAGIC_LINK_DEFAULT_MINUTES;
  if (minutes < 5 || minutes > 10080) {
    throw new StytchError(400, 'invalid_expiration', 'discovery_expiration_minutes must be between 5 and 10080.');
  }
  const email = b.email_address.toLowerCase();
  const token = randomToken(32);
  magicLinks.set(token, {
    email,
    redirect,
    challenge: b.pkce_code_challenge ?? null,
    expiresAt: clock.nowMs() + minutes * 60_000,
    used: false,
  });
  const target = new URL(redirect);
  target.searchParams.append('stytch_token_type', 'discovery');
  target.searchParams.append('token', token);
  const link = target.href;
  outbox.push({ to: email, kind: 'discovery_magic_link', link, token, redirect_url: redirect, at: clock.iso() });
  console.error(`[stytch] discovery magic link for ${email}: ${link}`);
  return {};
}

function discoveryAuthenticate(ctx) {
  const b = checkBody(ctx.body, {
    discovery_magic_links_token: ['string', true],
    pkce_code_verifier: ['string'],
  });
  const ml = magicLinks.get(b.discovery_magic_links_token);
  if (!ml) throw new StytchError(404, 'magic_link_not_found', 'Magic link could not be found.');
  if (ml.used || clock.nowMs() >= ml.expiresAt) {
    throw new StytchError(401, 'unable_to_auth_magic_link', 'Magic link could not be authenticated because it was either already used or expired.');
  }
  if (ml.challenge && b.pkce_code_verifier === undefined) {
    throw new StytchError(400, 'pkce_expected_code_verifier', 'This magic link was sent with a pkce_code_challenge; pkce_code_verifier is required.');
  }
  if (!ml.challenge && b.pkce_code_verifier !== undefined) {
    throw new StytchError(400, 'pkce_did_not_expect_code_verifier', 'This magic link was sent without a pkce_code_challenge; do not send pkce_code_verifier.');
  }
  if (ml.challenge && sha256b64url(b.pkce_code_verifier) !== ml.challenge) {
    throw new StytchError(400, 'pkce_mismatch', 'The pkce_code_verifier does not match the pkce_code_challenge.');
  }
  ml.used = true;
  const at = clock.iso();
  const factors = [magicLinkFactor(ml.email, `email-test-${uuid()}`, at)];
  const [token, ist] = newIst(ml.email, factors, null);
  return {
    intermediate_session_token: token,
    email_address: ml.email,
    discovered_organizations: discoveredOrganizations(ml.email, false),
    intermediate_session_token_expires_at: clock.iso(ist.expiresAt),
  };
}

function discoveryOrganizations(ctx) {
  const spec = ctx.family === 'sdk'
    ? { intermediate_session_token: ['string'] }
    : { intermediate_session_token: ['string'], session_token: ['string'], session_jwt: ['string'] };
  const b = checkBody(ctx.body, spec);
  const given = Object.keys(b).length;
  if (given > 1) {
    throw new StytchError(400, 'too_many_session_arguments', 'Pass exactly one of intermediate_session_token, session_token or session_jwt.');
  }
  let email;
  let sessionBased;
  if (b.intermediate_session_token !== undefined) {
    email = liveIst(b.intermediate_session_token).email;
    sessionBased = false;
  } else if (ctx.family === 'sdk') {
    if (!ctx.sdkSessionToken) {
      throw new StytchError(400, 'no_session_arguments', 'Pass an intermediate_session_token or call with a session.');
    }
    email = sdkSession(ctx).email;
    sessionBased = true;
  } else if (given === 1) {
    email = sessionFromBody(b).email;
    sessionBased = true;
  } else {
    throw new StytchError(400, 'no_session_arguments', 'Pass exactly one of intermediate_session_token, session_token or session_jwt.');
  }
  return {
    email_address: email,
    discovered_organizations: discoveredOrganizations(email, sessionBased),
    organization_id_hint: null,
  };
}

function istExchange(ctx) {
  // The official SDKs always send session_duration_minutes here (Android B2BRequests
  // Discovery.SessionExchangeRequest); the fake requires it from SDK callers.
  const b = checkBody(ctx.body, {
    intermediate_session_token: ['string', true],
    organization_id: ['string', true],
    session_duration_minutes: ['int', ctx.family === 'sdk'],
    session_custom_claims: ['object'],
    locale: ['string'],
    telemetry_id: ['string'],
  });
  const minutes = checkDuration(b.session_duration_minutes);
  const claims = checkCustomClaims(b.session_custom_claims);
  checkLocale(b.locale);
  const ist = liveIst(b.intermediate_session_token);
  const org = findOrg(b.organization_id);
  let member = memberOf(ist.email, org);
  if (!member) {
    const eligible = ELIGIBLE_BY_DOMAIN.some((e) => e.email === ist.email && e.org === org);
    if (!eligible) {
      throw new StytchError(403, 'email_jit_provisioning_not_allowed',
        `${ist.email} is not a member of ${org.organization_slug} and may not join it.`);
    }
    member = addMember(`member-test-${uuid()}`, org, ist.email);
    console.error(`[stytch] ${ist.email} joined ${org.organization_slug} by email domain`);
  }
  if (org.mfa_policy === 'REQUIRED_FOR_ALL') {
    // The IST is not consumed; it comes back for the MFA step.
    ist.orgId = org.organization_id;
    return exchangeAnswer({ member, org, istToken: b.intermediate_session_token, ist });
  }
  ist.consumed = true;
  const session = createSession(member, ist.factors, minutes, claims);
  return exchangeAnswer({ member, org, session });
}

function sessionsAuthenticate(ctx) {
  let s;
  let b;
  if (ctx.family === 'sdk') {
    b = checkBody(ctx.body, { session_duration_minutes: ['int'] });
    s = sdkSession(ctx);
  } else {
    b = checkBody(ctx.body, {
      session_token: ['string'],
      session_jwt: ['string'],
      session_duration_minutes: ['int'],
      session_custom_claims: ['object'],
      authorization_check: ['object'],
    });
    s = sessionFromBody(b);
  }
  if (b.session_duration_minutes !== undefined) {
    s.expiresAt = clock.nowMs() + checkDuration(b.session_duration_minutes) * 60_000;
  }
  if (b.session_custom_claims !== undefined) s.customClaims = checkCustomClaims(b.session_custom_claims);
  let verdict = null;
  if (b.authorization_check !== undefined) {
    if (b.authorization_check.organization_id !== s.organization_id) {
      throw new StytchError(403, 'session_authorization_tenancy_error',
        'The session does not belong to the organization of the authorization check.');
    }
    verdict = { authorized: true, granting_roles: ['stytch_member'] };
  }
  s.lastAccessedAt = clock.nowMs();
  const member = members.get(s.member_id);
  return {
    member_session: memberSessionObject(s),
    session_token: s.token,
    session_jwt: mintJwt(s),
    member: memberObject(member),
    organization: orgObject(orgById(s.organization_id)),
    verdict,
  };
}

function sessionsExchange(ctx) {
  let s;
  let b;
  if (ctx.family === 'sdk') {
    b = checkBody(ctx.body, {
      organization_id: ['string', true],
      session_duration_minutes: ['int'],
      locale: ['string'],
    });
    s = sdkSession(ctx);
  } else {
    b = checkBody(ctx.body, {
      organization_id: ['string', true],
      session_token: ['string'],
      session_jwt: ['string'],
      session_duration_minutes: ['int'],
      session_custom_claims: ['object'],
      locale: ['string'],
    });
    s = sessionFromBody(b);
  }
  const minutes = checkDuration(b.session_duration_minutes);
  const claims = checkCustomClaims(b.session_custom_claims);
  checkLocale(b.locale);
  const org = findOrg(b.organization_id);
  const member = memberOf(s.email, org);
  if (!member) {
    // Exchanging a session can accept an invite, not join by email domain.
    throw new StytchError(404, 'member_not_found',
      `${s.email} is not a member of ${org.organization_slug}.`);
  }
  if (org.mfa_policy === 'REQUIRED_FOR_ALL') {
    const [istToken, ist] = newIst(s.email, s.factors, org.organization_id);
    return exchangeAnswer({ member, org, istToken, ist });
  }
  const session = createSession(member, s.factors, minutes, claims);
  return exchangeAnswer({ member, org, session });
}

function sessionsRevoke(ctx) {
  if (ctx.family === 'sdk') {
    checkBody(ctx.body, {});
    const s = sdkSession(ctx);
    s.revoked = true;
    return {};
  }
  const b = checkBody(ctx.body, {
    member_session_id: ['string'],
    session_token: ['string'],
    session_jwt: ['string'],
    member_id: ['string'],
  });
  const n = Object.keys(b).length;
  if (n === 0) throw new StytchError(400, 'no_session_revoke_arguments', 'Pass one of member_session_id, session_token, session_jwt or member_id.');
  if (n > 1) throw new StytchError(400, 'too_many_session_revoke_arguments', 'Pass only one of member_session_id, session_token, session_jwt or member_id.');
  if (b.member_id !== undefined) {
    if (!members.has(b.member_id)) throw new StytchError(404, 'member_not_found', 'Member could not be found.');
    for (const s of sessions.values()) if (s.member_id === b.member_id) s.revoked = true;
    return {};
  }
  let s;
  if (b.member_session_id !== undefined) s = sessionsById.get(b.member_session_id);
  else if (b.session_token !== undefined) s = sessions.get(b.session_token);
  else s = sessionFromJwt(b.session_jwt);
  if (!live(s)) throw SESSION_NOT_FOUND();
  s.revoked = true;
  return {};
}

function membersMe(ctx) {
  const s = sdkSession(ctx);
  return { member: memberObject(members.get(s.member_id)) };
}

function organizationsMe(ctx) {
  const s = sdkSession(ctx);
  return { organization: orgObject(orgById(s.organization_id)) };
}

const BOTH = ['backend', 'sdk'];
const ROUTES = {
  'b2b/magic_links/email/discovery/send': { method: 'POST', families: BOTH, handler: discoverySend },
  'b2b/magic_links/discovery/authenticate': { method: 'POST', families: BOTH, handler: discoveryAuthenticate },
  'b2b/discovery/organizations': { method: 'POST', families: BOTH, handler: discoveryOrganizations },
  'b2b/discovery/intermediate_sessions/exchange': { method: 'POST', families: BOTH, handler: istExchange },
  'b2b/sessions/authenticate': { method: 'POST', families: BOTH, handler: sessionsAuthenticate },
  'b2b/sessions/exchange': { method: 'POST', families: BOTH, handler: sessionsExchange },
  'b2b/sessions/revoke': { method: 'POST', families: BOTH, handler: sessionsRevoke },
  'b2b/organizations/members/me': { method: 'GET', families: ['sdk'], handler: membersMe },
  'b2b/organizations/me': { method: 'GET', families: ['sdk'], handler: organizationsMe },
};

// ---------------------------------------------------------------------------------------------
// Authentication of the caller

function authenticateBackend(req) {
  const c = basicAuth(req);
  if (!c || c.username !== PROJECT_ID || c.password !== SECRET) {
    throw new StytchError(401, 'unauthorized_credentials',
      'Unauthorized credentials: the backend API needs HTTP Basic project_id:secret.');
  }
}

/**
 * Returns the session token of the Basic header, or null when the password is the public token.
 * A revoked or expired session token is refused like any other unknown password (401): the real
 * answer is not documented, and the official SDKs treat both unauthorized_credentials and
 * session_not_found as the end of the session (Android StytchAPIError UNRECOVERABLE_ERRORS).
 */
function authenticateSdk(req) {
  const c = basicAuth(req);
  if (!c || c.username !== PUBLIC_TOKEN) {
    throw new StytchError(401, 'unauthorized_credentials',
      'Unauthorized credentials: the SDK API needs HTTP Basic public_token:(public_token|session_token).');
  }
  if (c.password === PUBLIC_TOKEN) return null;
  if (live(sessions.get(c.password))) return c.password;
  throw new StytchError(401, 'unauthorized_credentials',
    'Unauthorized credentials: the Basic password is neither the public token nor a live session token.');
}

const SDK_CLIENT_SHAPE = 'X-SDK-Client must be base64(JSON) with sdk.identifier, sdk.version and app.identifier, as the official SDKs send it.';

/**
 * The decoded `X-SDK-Client` header the official SDKs send on every SDK call
 * (StytchAuthHeaderInterceptor: base64 of `{sdk, app, os, device}`, each `{identifier, version}`).
 */
function sdkClient(req) {
  const raw = req.headers['x-sdk-client'];
  if (typeof raw !== 'string' || raw === '') {
    throw new StytchError(400, 'bad_request', `The X-SDK-Client header is missing. ${SDK_CLIENT_SHAPE}`);
  }
  let info = null;
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(raw)) {
    try {
      info = JSON.parse(Buffer.from(raw, 'base64').toString('utf8'));
    } catch {
      info = null;
    }
  }
  const text = (v) => typeof v === 'string' && v !== '';
  if (!info || typeof info !== 'object' || !text(info.sdk?.identifier) || !text(info.sdk?.version)
      || !text(info.app?.identifier)) {
    throw new StytchError(400, 'bad_request', `The X-SDK-Client header is malformed. ${SDK_CLIENT_SHAPE}`);
  }
  return info;
}

/**
 * The SDK configuration's check of the caller: a browser (Origin / X-SDK-Parent-Host) must come
 * from an authorized domain, an app (no origin) must name an authorized bundle id in X-SDK-Client.
 */
function authorizeSdkCaller(req, client) {
  const parent = req.headers['x-sdk-parent-host'] ?? req.headers.origin;
  if (parent !== undefined) {
    let origin = null;
    try {
      origin = new URL(parent).origin;
    } catch {
      origin = null;
    }
    if (origin === null || !AUTHORIZED_DOMAINS.includes(origin)) {
      throw new StytchError(403, 'bad_domain_for_stytch_sdk',
        `${parent} is not an authorized domain of this project's SDK configuration.`);
    }
    return;
  }
  if (!AUTHORIZED_APPS.includes(client.app.identifier)) {
    throw new StytchError(403, 'invalid_mobile_identifier',
      `The app identifier ${JSON.stringify(client.app.identifier)} does not match an authorized application (bundle id) of this project's SDK configuration.`);
  }
}

/** What the request log shows of `X-SDK-Client`: the identifiers, or why it was refused. */
function describeSdkClient(req) {
  if (req.headers['x-sdk-client'] === undefined) return null;
  try {
    const c = sdkClient(req);
    return { sdk: c.sdk.identifier, app: c.app.identifier };
  } catch {
    return 'malformed';
  }
}

function describeAuth(req) {
  const c = basicAuth(req);
  if (!c) return req.headers.authorization ? { scheme: 'malformed' } : null;
  let password = 'other';
  if (c.password === SECRET) password = 'secret';
  else if (c.password === PUBLIC_TOKEN) password = 'public_token';
  else if (sessions.has(c.password)) password = 'session_token';
  return { scheme: 'basic', username: c.username, password };
}

// ---------------------------------------------------------------------------------------------
// Test hooks

const testHook = testHooks({
  name: 'stytch',
  clock,
  timestamp: () => clock.iso(),
  outbox,
  requestLog,
  signingKeys,
  newKey: () => newSigningKey('RS256', `jwk-test-${uuid()}`),
});

// ---------------------------------------------------------------------------------------------
// Dispatch

const JWKS_RE = /^\/v1\/b2b\/sessions\/jwks\/([^/]+)$/;

async function handle(req, res, url) {
  const path = url.pathname;
  if (path.startsWith('/__test/')) return testHook(req, res, url);

  const raw = await readBody(req);
  const entry = {
    method: req.method,
    path,
    query: url.search ? url.search.slice(1) : '',
    family: path.startsWith('/sdk/v1/') ? 'sdk' : path.startsWith('/v1/') ? 'backend' : null,
    auth: describeAuth(req),
    headers: {
      'content-type': req.headers['content-type'] ?? null,
      'x-sdk-client': describeSdkClient(req),
      'x-sdk-parent-host': req.headers['x-sdk-parent-host'] ?? null,
      origin: req.headers.origin ?? null,
    },
    body_fields: [],
    at: clock.iso(),
  };

  let status = 200;
  let body;
  try {
    body = await route(req, url, raw, entry);
  } catch (err) {
    if (!(err instanceof StytchError)) throw err;
    status = err.status;
    body = errorBody(err.status, err.type, err.message);
    entry.error_type = err.type;
  }
  entry.status = status;
  requestLog.push(entry);
  console.error(`[stytch] ${req.method} ${path} -> ${status}${entry.error_type ? ` ${entry.error_type}` : ''}`);
  sendJson(res, status, body);
}

async function route(req, url, raw, entry) {
  const path = url.pathname;
  const jwks = JWKS_RE.exec(path);
  if (jwks) {
    if (req.method !== 'GET') throw new StytchError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}.`);
    if (jwks[1] !== PROJECT_ID) throw new StytchError(404, 'project_not_found', 'Project could not be found.');
    return { keys: signingKeys.map((k) => k.publicJwk), request_id: requestId(), status_code: 200 };
  }

  let family;
  let rest;
  if (path.startsWith('/v1/')) {
    family = 'backend';
    rest = path.slice('/v1/'.length);
  } else if (path.startsWith('/sdk/v1/')) {
    family = 'sdk';
    rest = path.slice('/sdk/v1/'.length);
  }
  const r = family ? ROUTES[rest] : undefined;
  if (!r || !r.families.includes(family)) {
    throw new StytchError(404, 'route_not_found', `Route not found: ${req.method} ${path}.`);
  }
  if (req.method !== r.method) {
    throw new StytchError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}; use ${r.method}.`);
  }

  const ctx = { family, body: {}, sdkSessionToken: null };
  if (family === 'backend') {
    authenticateBackend(req);
  } else {
    ctx.sdkSessionToken = authenticateSdk(req);
    authorizeSdkCaller(req, sdkClient(req));
  }

  if (r.method === 'POST') {
    const text = raw.toString('utf8').trim();
    if (text) {
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new StytchError(400, 'bad_request', 'The request body is not valid JSON.');
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new StytchError(400, 'bad_request', 'The request body must be a JSON object.');
      }
      ctx.body = parsed;
      entry.body_fields = Object.keys(parsed);
    }
  } else if (url.search) {
    throw new StytchError(400, 'bad_request', `${path} takes no query parameters.`);
  }

  const data = r.handler(ctx);
  const rid = requestId();
  if (family === 'sdk') {
    return { request_id: rid, status_code: 200, data: { request_id: rid, status_code: 200, ...data } };
  }
  return { request_id: rid, status_code: 200, ...data };
}

serve({
  port: opts.port,
  name: 'stytch',
  handler: handle,
  readyFields: (baseUrl, port) => {
    // Stytch's SDKs accept the base URL without a trailing slash as issuer (stytch-node B2BClient).
    if (opts['custom-domain']) ISSUER = baseUrl;
    return {
      base_url: baseUrl,
      port,
      project_id: PROJECT_ID,
      public_token: PUBLIC_TOKEN,
      secret: SECRET,
      issuer: ISSUER,
    };
  },
});
