//! End-to-end checks of the provider fakes in tests/fakes (Stytch B2B, Stack Auth), driven the
//! way a client would with plain reqwest (no Tessera code involved): every documented flow and
//! every rejection the fakes implement.

mod support;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::{http, jwt_part, param, pkce};
use tessera_testkit::fakes::{stack_fixture, stytch_fixture};
use tessera_testkit::{StackFake, StytchFake};
use url::Url;

/// A fake's answer: the status, the headers and the body (JSON, or else the text as a string).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

/// Sends `req` and reads the answer.
async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

impl Answer {
    /// The body of a 200 answer.
    #[track_caller]
    fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body
    }

    /// Asserts a Stytch error body.
    #[track_caller]
    fn stytch_error(&self, status: u16, error_type: &str) {
        let v = &self.body;
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["error_type"], error_type, "{v}");
        assert_eq!(v["status_code"], status, "{v}");
        assert!(v["request_id"].as_str().is_some(), "{v}");
        assert!(v["error_message"].as_str().is_some(), "{v}");
        assert_eq!(
            v["error_url"],
            format!("https://stytch.com/docs/api/errors/{status}#{error_type}"),
            "{v}"
        );
    }

    /// The `data` of a Stytch SDK answer (checking the envelope).
    #[track_caller]
    fn sdk_data(&self) -> Value {
        let v = &self.body;
        assert_eq!(self.status, 200, "{v}");
        assert_eq!(v["status_code"], 200, "{v}");
        assert!(v["request_id"].as_str().is_some(), "{v}");
        let data = v["data"].clone();
        assert!(data.is_object(), "SDK answers are wrapped in data: {v}");
        assert_eq!(data["status_code"], 200, "{v}");
        data
    }

    /// Asserts a Stack known error: status, `x-stack-known-error` header and
    /// `{code, error, details?}`; returns the details.
    #[track_caller]
    fn known(&self, status: u16, code: &str) -> Value {
        let v = &self.body;
        assert_eq!(self.status, status, "{v}");
        assert_eq!(
            self.headers
                .get("x-stack-known-error")
                .and_then(|v| v.to_str().ok()),
            Some(code),
            "{v}"
        );
        assert_eq!(v["code"], code, "{v}");
        assert!(v["error"].as_str().is_some(), "{v}");
        v["details"].clone()
    }
}

// =============================================================================================
// Stytch B2B

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

// The endpoints, under `/v1/` (backend) or `/sdk/v1/` (SDK).
const MAGIC_LINK_SEND: &str = "b2b/magic_links/email/discovery/send";
const MAGIC_LINK_AUTHENTICATE: &str = "b2b/magic_links/discovery/authenticate";
const DISCOVERED_ORGS: &str = "b2b/discovery/organizations";
const IST_EXCHANGE: &str = "b2b/discovery/intermediate_sessions/exchange";
const SESSION_AUTHENTICATE: &str = "b2b/sessions/authenticate";
const SESSION_EXCHANGE: &str = "b2b/sessions/exchange";
const SESSION_REVOKE: &str = "b2b/sessions/revoke";

/// Which API family, with which Basic credentials.
#[derive(Clone, Copy)]
enum Api<'a> {
    /// `/v1/…` with `project_id:secret`.
    Backend,
    /// `/sdk/v1/…` with `public_token:public_token`.
    SdkAnon,
    /// `/sdk/v1/…` with `public_token:session_token`.
    Sdk(&'a str),
}

async fn stytch(fake: &StytchFake, api: Api<'_>, path: &str, body: Value) -> Answer {
    let (url, user, pass) = match api {
        Api::Backend => (
            fake.url(&format!("/v1/{path}")),
            fake.project_id.as_str(),
            fake.secret.as_str(),
        ),
        Api::SdkAnon => (
            fake.url(&format!("/sdk/v1/{path}")),
            fake.public_token.as_str(),
            fake.public_token.as_str(),
        ),
        Api::Sdk(session) => (
            fake.url(&format!("/sdk/v1/{path}")),
            fake.public_token.as_str(),
            session,
        ),
    };
    send(http().post(url).basic_auth(user, Some(pass)).json(&body)).await
}

async fn backend(fake: &StytchFake, path: &str, body: Value) -> Answer {
    stytch(fake, Api::Backend, path, body).await
}

/// Sends a discovery magic link to `email` with a PKCE `challenge`, through `api`.
async fn send_link(
    fake: &StytchFake,
    api: Api<'_>,
    email: &str,
    redirect: &str,
    challenge: &str,
) -> Answer {
    let body = json!({
        "email_address": email,
        "discovery_redirect_url": redirect,
        "pkce_code_challenge": challenge,
    });
    stytch(fake, api, MAGIC_LINK_SEND, body).await
}

/// Authenticates the discovery magic link `link` with the PKCE `verifier`, through `api`.
async fn redeem_link(fake: &StytchFake, api: Api<'_>, link: &str, verifier: &str) -> Answer {
    let token = param(link, "token").expect("token in the link");
    let body = json!({ "discovery_magic_links_token": token, "pkce_code_verifier": verifier });
    stytch(fake, api, MAGIC_LINK_AUTHENTICATE, body).await
}

/// send → mailbox → authenticate (with PKCE), through the backend API; returns the IST answer.
async fn stytch_discover(fake: &StytchFake, email: &str, redirect: &str) -> Value {
    let (verifier, challenge) = pkce();
    send_link(fake, Api::Backend, email, redirect, &challenge)
        .await
        .ok();
    let link = fake.latest_link_to(email).await;
    redeem_link(fake, Api::Backend, &link, &verifier).await.ok()
}

/// Exchanges the intermediate session token `ist` (backend API); `fields` are the others.
async fn exchange_ist(fake: &StytchFake, ist: &Value, mut fields: Value) -> Answer {
    fields["intermediate_session_token"] = ist.clone();
    backend(fake, IST_EXCHANGE, fields).await
}

/// The JWKS (an unauthenticated GET).
async fn stytch_jwks(fake: &StytchFake) -> Answer {
    let url = fake.url(&format!("/v1/b2b/sessions/jwks/{}", fake.project_id));
    send(http().get(url)).await
}

/// Asserts that the session (its `token` and its `jwt`) no longer authenticates.
async fn assert_session_gone(fake: &StytchFake, token: &str, jwt: &str) {
    for body in [
        json!({ "session_token": token }),
        json!({ "session_jwt": jwt }),
    ] {
        backend(fake, SESSION_AUTHENTICATE, body)
            .await
            .stytch_error(404, "session_not_found");
    }
}

fn org_slugs(discovered: &Value) -> Vec<(String, String)> {
    discovered
        .as_array()
        .expect("discovered_organizations is an array")
        .iter()
        .map(|d| {
            (
                d["organization"]["organization_slug"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                d["membership"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn stytch_discovery_round_trip_backend_api() {
    let fake = StytchFake::start().await;
    assert_eq!(
        fake.project_id,
        "project-test-11111111-1111-1111-1111-111111111111"
    );

    // 1. Send: the "mail" lands in the outbox with the documented link shape.
    let (verifier, challenge) = pkce();
    let sent = send_link(
        &fake,
        Api::Backend,
        ALICE,
        "dev.tessera:/callback",
        &challenge,
    )
    .await
    .ok();
    assert_eq!(sent["status_code"], 200);
    assert!(sent["request_id"].as_str().is_some());
    let link = fake.latest_link_to(ALICE).await;
    assert!(
        link.starts_with("dev.tessera:/callback?stytch_token_type=discovery&token="),
        "{link}"
    );
    assert_eq!(
        param(&link, "stytch_token_type").as_deref(),
        Some("discovery")
    );
    let token = param(&link, "token").unwrap();
    let mail = fake.outbox().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["to"], ALICE);

    // 2. Authenticate: PKCE is enforced, then the token is single-use.
    let auth = |body: Value| backend(&fake, MAGIC_LINK_AUTHENTICATE, body);
    auth(json!({ "discovery_magic_links_token": token }))
        .await
        .stytch_error(400, "pkce_expected_code_verifier");
    let (wrong, _) = pkce();
    auth(json!({ "discovery_magic_links_token": token, "pkce_code_verifier": wrong }))
        .await
        .stytch_error(400, "pkce_mismatch");
    let authed = redeem_link(&fake, Api::Backend, &link, &verifier)
        .await
        .ok();
    redeem_link(&fake, Api::Backend, &link, &verifier)
        .await
        .stytch_error(401, "unable_to_auth_magic_link");
    auth(json!({ "discovery_magic_links_token": "never-issued" }))
        .await
        .stytch_error(404, "magic_link_not_found");
    assert_eq!(authed["email_address"], ALICE);
    let ist = authed["intermediate_session_token"].clone();
    assert!(ist.is_string(), "{authed}");
    assert!(authed["intermediate_session_token_expires_at"].is_string());
    assert_eq!(
        org_slugs(&authed["discovered_organizations"]),
        [
            ("acme".into(), "active_member".into()),
            ("globex".into(), "active_member".into()),
            ("initech".into(), "eligible_to_join_by_email_domain".into()),
        ]
    );
    let globex = &authed["discovered_organizations"][1];
    assert_eq!(globex["member_authenticated"], false);
    assert!(globex["mfa_required"].is_object(), "{globex}");
    let acme = &authed["discovered_organizations"][0];
    assert_eq!(acme["member_authenticated"], true);
    assert_eq!(
        acme["organization"]["organization_id"],
        stytch_fixture::ORG_ACME
    );
    assert_eq!(
        acme["membership"]["member"]["member_id"],
        stytch_fixture::ALICE_ACME
    );

    // 3. The IST lists the same organizations without being consumed.
    let listed = backend(
        &fake,
        DISCOVERED_ORGS,
        json!({ "intermediate_session_token": ist }),
    )
    .await
    .ok();
    assert_eq!(org_slugs(&listed["discovered_organizations"]).len(), 3);
    assert!(listed["organization_id_hint"].is_null());

    // 4. Exchange into globex: MFA required, IST handed back unconsumed, no session.
    let exchange = |org: &str| exchange_ist(&fake, &ist, json!({ "organization_id": org }));
    let mfa = exchange("globex").await.ok();
    assert_eq!(mfa["member_authenticated"], false);
    assert!(mfa["mfa_required"].is_object(), "{mfa}");
    assert_eq!(mfa["intermediate_session_token"], ist);
    assert_eq!(mfa["session_token"], "");
    assert_eq!(mfa["session_jwt"], "");
    assert!(mfa["member_session"].is_null());
    assert_eq!(mfa["member_id"], stytch_fixture::ALICE_GLOBEX);

    // 5. Exchange into acme (by slug): a session; the IST is now consumed.
    let exchanged = exchange("acme").await.ok();
    assert_eq!(exchanged["member_authenticated"], true);
    assert_eq!(exchanged["intermediate_session_token"], "");
    assert_eq!(exchanged["member_id"], stytch_fixture::ALICE_ACME);
    assert_eq!(exchanged["organization"]["organization_slug"], "acme");
    assert!(exchanged["mfa_required"].is_null());
    let session_token = exchanged["session_token"].as_str().unwrap().to_owned();
    let jwt1 = exchanged["session_jwt"].as_str().unwrap().to_owned();
    let session_id = exchanged["member_session"]["member_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    exchange("acme")
        .await
        .stytch_error(404, "intermediate_session_not_found");

    // 6. The session JWT against the JWKS (unauthenticated GET).
    let jwks = stytch_jwks(&fake).await.ok();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(keys[0]["n"].is_string() && keys[0]["e"].is_string());
    let header = jwt_part(&jwt1, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], keys[0]["kid"]);
    let claims = jwt_part(&jwt1, 1);
    assert_eq!(claims["iss"], format!("stytch.com/{}", fake.project_id));
    assert_eq!(claims["aud"], json!([fake.project_id]));
    assert_eq!(claims["sub"], stytch_fixture::ALICE_ACME);
    let iat1 = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat1, 300);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat1);
    assert_eq!(
        claims["https://stytch.com/organization"],
        json!({ "organization_id": stytch_fixture::ORG_ACME, "slug": "acme" })
    );
    let sess = &claims["https://stytch.com/session"];
    assert_eq!(sess["id"], session_id);
    for field in ["started_at", "last_accessed_at", "expires_at"] {
        assert!(sess[field].is_string(), "{field} in {sess}");
    }
    assert!(sess["attributes"].is_object());
    assert_eq!(sess["authentication_factors"][0]["type"], "magic_link");
    assert_eq!(
        sess["authentication_factors"][0]["delivery_method"],
        "email"
    );
    assert!(sess["roles"].is_array());

    // 7. Authenticate re-mints the JWT with the same session token.
    fake.advance_clock(60).await;
    let authenticate = |body: Value| backend(&fake, SESSION_AUTHENTICATE, body);
    let again = authenticate(json!({ "session_token": session_token }))
        .await
        .ok();
    assert_eq!(again["session_token"], session_token);
    let jwt2 = again["session_jwt"].as_str().unwrap();
    assert_ne!(jwt2, jwt1);
    assert!(jwt_part(jwt2, 1)["iat"].as_i64().unwrap() >= iat1 + 60);
    assert_eq!(
        again["member_session"]["expires_at"], exchanged["member_session"]["expires_at"],
        "no session_duration_minutes: the session is not extended"
    );
    // … also from the (possibly expired) JWT, and session_duration_minutes extends.
    let extended = authenticate(json!({ "session_jwt": jwt1, "session_duration_minutes": 600 }))
        .await
        .ok();
    assert_eq!(extended["session_token"], session_token);
    assert!(
        extended["member_session"]["expires_at"].as_str().unwrap()
            > again["member_session"]["expires_at"].as_str().unwrap()
    );
    authenticate(json!({ "session_token": session_token, "session_jwt": jwt2 }))
        .await
        .stytch_error(400, "too_many_session_arguments");

    // 8. A member session lists the member's organizations only (no eligible-to-join).
    let session = json!({ "session_token": session_token });
    let mine = backend(&fake, DISCOVERED_ORGS, session.clone()).await.ok();
    assert_eq!(
        org_slugs(&mine["discovered_organizations"]),
        [
            ("acme".into(), "active_member".into()),
            ("globex".into(), "active_member".into()),
        ]
    );

    // 9. Org switch: globex wants MFA; initech cannot be joined with a session.
    let switch = |org: &str| {
        let body = json!({ "session_token": session_token, "organization_id": org });
        backend(&fake, SESSION_EXCHANGE, body)
    };
    let switched = switch(stytch_fixture::ORG_GLOBEX).await.ok();
    assert_eq!(switched["member_authenticated"], false);
    assert!(switched["mfa_required"].is_object());
    assert!(
        !switched["intermediate_session_token"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(switched["session_token"], "");
    switch("initech")
        .await
        .stytch_error(404, "member_not_found");
    switch("umbrella")
        .await
        .stytch_error(404, "organization_not_found");

    // 10. Revoke → authenticate is 404 session_not_found.
    let revoked = backend(&fake, SESSION_REVOKE, session).await.ok();
    assert_eq!(revoked["status_code"], 200);
    assert_session_gone(&fake, &session_token, jwt2).await;

    // The request log: what was sent, never the secret.
    let log = fake.requests().await;
    assert!(log.iter().any(|r| r["path"] == "/v1/b2b/sessions/revoke"
        && r["auth"]["password"] == "secret"
        && r["auth"]["username"] == fake.project_id.as_str()
        && r["body_fields"] == json!(["session_token"])));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&fake.secret), "secret leaked into the log");
    assert!(!text.contains(&session_token), "session token leaked");
}

#[tokio::test]
async fn stytch_discovery_round_trip_sdk_api() {
    let fake = StytchFake::start().await;
    let (verifier, challenge) = pkce();

    let loopback = "http://127.0.0.1:53124/callback";
    send_link(&fake, Api::SdkAnon, ALICE, loopback, &challenge)
        .await
        .sdk_data();
    let link = fake.latest_link_to(ALICE).await;
    assert!(link.starts_with("http://127.0.0.1:53124/callback?stytch_token_type=discovery&token="));

    let authed = redeem_link(&fake, Api::SdkAnon, &link, &verifier)
        .await
        .sdk_data();
    let ist = &authed["intermediate_session_token"];
    assert!(ist.is_string(), "{authed}");
    assert_eq!(org_slugs(&authed["discovered_organizations"]).len(), 3);

    let exchanged = stytch(
        &fake,
        Api::SdkAnon,
        IST_EXCHANGE,
        json!({
            "intermediate_session_token": ist,
            "organization_id": stytch_fixture::ORG_ACME,
            "session_duration_minutes": 60,
        }),
    )
    .await
    .sdk_data();
    let session = exchanged["session_token"].as_str().unwrap().to_owned();
    assert_eq!(exchanged["member_authenticated"], true);

    // Refresh: the session token rides in the Basic header; body only session_duration_minutes.
    fake.advance_clock(30).await;
    let sdk = |path: &'static str, body: Value| stytch(&fake, Api::Sdk(&session), path, body);
    let refreshed = sdk(SESSION_AUTHENTICATE, json!({})).await.sdk_data();
    assert_eq!(refreshed["session_token"], session);
    assert_ne!(refreshed["session_jwt"], exchanged["session_jwt"]);
    sdk(SESSION_AUTHENTICATE, json!({ "session_token": session }))
        .await
        .stytch_error(400, "bad_request");

    // members/me and organizations/me (GET, session from the header).
    for (path, field, want) in [
        (
            "/sdk/v1/b2b/organizations/members/me",
            "member",
            ("member_id", stytch_fixture::ALICE_ACME),
        ),
        (
            "/sdk/v1/b2b/organizations/me",
            "organization",
            ("organization_slug", "acme"),
        ),
    ] {
        let req = http()
            .get(fake.url(path))
            .basic_auth(&fake.public_token, Some(&session));
        let data = send(req).await.sdk_data();
        assert_eq!(data[field][want.0], want.1, "{data}");
    }

    let orgs = sdk(DISCOVERED_ORGS, json!({})).await.sdk_data();
    assert_eq!(org_slugs(&orgs["discovered_organizations"]).len(), 2);

    let switched = sdk(SESSION_EXCHANGE, json!({ "organization_id": "globex" }))
        .await
        .sdk_data();
    assert_eq!(switched["member_authenticated"], false);
    assert!(switched["mfa_required"].is_object());

    // Revoke (no body) → the header's session is gone.
    sdk(SESSION_REVOKE, json!({})).await.sdk_data();
    sdk(SESSION_AUTHENTICATE, json!({}))
        .await
        .stytch_error(404, "session_not_found");
    stytch(&fake, Api::SdkAnon, SESSION_AUTHENTICATE, json!({}))
        .await
        .stytch_error(404, "session_not_found");

    let log = fake.requests().await;
    assert!(log.iter().any(|r| r["family"] == "sdk"
        && r["path"] == "/sdk/v1/b2b/sessions/authenticate"
        && r["auth"]["password"] == "session_token"));
}

#[tokio::test]
async fn stytch_rejections() {
    let fake = StytchFake::start().await;
    let send_mail = |body: Value| backend(&fake, MAGIC_LINK_SEND, body);

    // Wrong credentials for each family. The public token is not good for the backend API, nor
    // the secret for the SDK API.
    for (family, credentials) in [
        ("/v1", Some((&fake.project_id, "wrong-secret"))),
        ("/v1", None),
        (
            "/v1",
            Some((&fake.public_token, fake.public_token.as_str())),
        ),
        ("/sdk/v1", Some((&fake.project_id, fake.secret.as_str()))),
    ] {
        let mut req = http()
            .post(fake.url(&format!("{family}/{MAGIC_LINK_SEND}")))
            .json(&json!({ "email_address": ALICE }));
        if let Some((user, pass)) = credentials {
            req = req.basic_auth(user, Some(pass));
        }
        send(req)
            .await
            .stytch_error(401, "unauthorized_credentials");
    }
    stytch(
        &fake,
        Api::Sdk("not-a-session"),
        MAGIC_LINK_SEND,
        json!({ "email_address": ALICE }),
    )
    .await
    .stytch_error(401, "unauthorized_credentials");

    // Unknown routes, wrong methods, SDK-only routes on the backend.
    backend(&fake, "b2b/magic_links/email/login_or_signup", json!({}))
        .await
        .stytch_error(404, "route_not_found");
    let backend_get = |path: &str| {
        let req = http()
            .get(fake.url(path))
            .basic_auth(&fake.project_id, Some(&fake.secret));
        send(req)
    };
    backend_get("/v1/b2b/sessions/authenticate")
        .await
        .stytch_error(405, "method_not_allowed");
    backend_get("/v1/b2b/organizations/me")
        .await
        .stytch_error(404, "route_not_found");
    send(http().get(fake.url("/v1/b2b/sessions/jwks/project-test-other")))
        .await
        .stytch_error(404, "project_not_found");

    // Bodies: unknown fields, wrong types, bad values.
    for (body, error_type) in [
        (
            json!({ "email_address": ALICE, "redirect_url": "dev.tessera:/callback" }),
            "bad_request",
        ),
        (json!({ "email_address": 42 }), "bad_request"),
        (json!({}), "bad_request"),
        (json!({ "email_address": "not-an-email" }), "invalid_email"),
        (
            json!({ "email_address": ALICE, "pkce_code_challenge": "short" }),
            "invalid_pkce_code_challenge",
        ),
    ] {
        send_mail(body).await.stytch_error(400, error_type);
    }
    // Unregistered redirect URLs (the loopback one matches any port, nothing else).
    for redirect in [
        "dev.tessera:/elsewhere",
        "https://evil.example.com/callback",
        "http://localhost/callback",
        "http://127.0.0.1:5000/callback?x=1",
    ] {
        send_mail(json!({ "email_address": ALICE, "discovery_redirect_url": redirect }))
            .await
            .stytch_error(400, "no_match_for_provided_magic_link_url");
    }
    assert!(
        fake.outbox().await.is_empty(),
        "rejected sends mail nothing"
    );

    // A link sent without PKCE refuses a verifier.
    let seen = fake.mail_count_to(BOB).await;
    assert_eq!(seen, 0);
    send_mail(json!({ "email_address": BOB })).await.ok();
    let link = fake.next_link_to(BOB, seen).await;
    assert_eq!(fake.latest_link_to(BOB).await, link);
    assert!(
        link.starts_with("dev.tessera:/callback?"),
        "default redirect: {link}"
    );
    redeem_link(&fake, Api::Backend, &link, &pkce().0)
        .await
        .stytch_error(400, "pkce_did_not_expect_code_verifier");
    let token = param(&link, "token").unwrap();
    let bob = backend(
        &fake,
        MAGIC_LINK_AUTHENTICATE,
        json!({ "discovery_magic_links_token": token }),
    )
    .await
    .ok();
    assert_eq!(
        org_slugs(&bob["discovered_organizations"]),
        [("acme".into(), "active_member".into())]
    );
    // bob cannot join globex or initech.
    let ist = &bob["intermediate_session_token"];
    for (fields, status, error_type) in [
        (
            json!({ "organization_id": "initech" }),
            403,
            "email_jit_provisioning_not_allowed",
        ),
        (
            json!({ "organization_id": "acme", "session_duration_minutes": 1 }),
            400,
            "invalid_session_duration_minutes",
        ),
        (
            json!({ "organization_id": "acme", "session_custom_claims": { "sub": "someone-else" } }),
            400,
            "reserved_claims_in_custom_claims",
        ),
    ] {
        exchange_ist(&fake, ist, fields)
            .await
            .stytch_error(status, error_type);
    }
    for (path, body, error_type) in [
        (SESSION_AUTHENTICATE, json!({}), "no_session_arguments"),
        (SESSION_REVOKE, json!({}), "no_session_revoke_arguments"),
        (
            SESSION_AUTHENTICATE,
            json!({ "session_jwt": "not.a.jwt" }),
            "unable_to_parse_session_jwt",
        ),
    ] {
        backend(&fake, path, body)
            .await
            .stytch_error(400, error_type);
    }
}

#[tokio::test]
async fn stytch_expiries_join_by_domain_and_key_rotation() {
    let fake = StytchFake::start().await;

    // An intermediate session lives 10 minutes.
    let authed = stytch_discover(&fake, ALICE, "dev.tessera:/callback").await;
    fake.advance_clock(601).await;
    let ist = &authed["intermediate_session_token"];
    exchange_ist(&fake, ist, json!({ "organization_id": "acme" }))
        .await
        .stytch_error(404, "intermediate_session_not_found");

    // A magic link lives discovery_expiration_minutes (default 60).
    backend(
        &fake,
        MAGIC_LINK_SEND,
        json!({ "email_address": ALICE, "discovery_expiration_minutes": 5 }),
    )
    .await
    .ok();
    let token = param(&fake.latest_link_to(ALICE).await, "token").unwrap();
    fake.advance_clock(301).await;
    backend(
        &fake,
        MAGIC_LINK_AUTHENTICATE,
        json!({ "discovery_magic_links_token": token }),
    )
    .await
    .stytch_error(401, "unable_to_auth_magic_link");

    // Joining initech by email domain creates the membership; the session then lists it.
    let authed = stytch_discover(&fake, ALICE, "http://127.0.0.1:40000/callback").await;
    let joined = exchange_ist(
        &fake,
        &authed["intermediate_session_token"],
        json!({ "organization_id": "initech", "session_duration_minutes": 5 }),
    )
    .await
    .ok();
    assert_eq!(joined["member_authenticated"], true);
    assert_eq!(
        joined["organization"]["organization_id"],
        stytch_fixture::ORG_INITECH
    );
    let session = joined["session_token"].as_str().unwrap().to_owned();
    let old_jwt = joined["session_jwt"].as_str().unwrap().to_owned();
    let mine = backend(&fake, DISCOVERED_ORGS, json!({ "session_jwt": old_jwt }))
        .await
        .ok();
    assert_eq!(org_slugs(&mine["discovered_organizations"]).len(), 3);

    // Key rotation: both keys published, the new one signs, the old JWT still authenticates.
    let kid = fake.rotate_signing_key().await;
    let jwks = stytch_jwks(&fake).await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let again = backend(
        &fake,
        SESSION_AUTHENTICATE,
        json!({ "session_jwt": old_jwt }),
    )
    .await
    .ok();
    assert_eq!(
        jwt_part(again["session_jwt"].as_str().unwrap(), 0)["kid"],
        kid
    );

    // The session (5 minutes) expires with the clock: 404, JWT or token alike.
    fake.advance_clock(301).await;
    assert_session_gone(&fake, &session, &old_jwt).await;
}

// =============================================================================================
// Stack Auth

const STACK_PASSWORD: &str = "demo";

/// The client headers Stack requires on every call.
fn stack_headers(fake: &StackFake) -> Vec<(&'static str, String)> {
    vec![
        ("x-stack-project-id", fake.project_id.clone()),
        ("x-stack-access-type", "client".to_owned()),
        (
            "x-stack-publishable-client-key",
            fake.publishable_key.clone(),
        ),
    ]
}

/// The JWKS; `query` is appended to its URL.
async fn stack_jwks(fake: &StackFake, query: &str) -> Answer {
    let path = format!("/projects/{}/.well-known/jwks.json{query}", fake.project_id);
    send(http().get(fake.api(&path))).await
}

struct Stack<'a> {
    fake: &'a StackFake,
    http: reqwest::Client,
}

impl Stack<'_> {
    fn new(fake: &StackFake) -> Stack<'_> {
        Stack { fake, http: http() }
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, self.fake.api(path));
        for (k, v) in stack_headers(self.fake) {
            req = req.header(k, v);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.req(method, path, extra);
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req).await
    }

    async fn post(&self, path: &str, extra: &[(&str, &str)], body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, extra, Some(body))
            .await
    }

    async fn get(&self, path: &str, extra: &[(&str, &str)]) -> Answer {
        self.call(reqwest::Method::GET, path, extra, None).await
    }

    /// `GET /users/me` with the access token `at`.
    async fn me(&self, at: &str) -> Answer {
        self.get("/users/me", &[("x-stack-access-token", at)]).await
    }

    /// `PATCH /users/me` with the access token `at`.
    async fn patch_me(&self, at: &str, body: Value) -> Answer {
        let extra = [("x-stack-access-token", at)];
        self.call(reqwest::Method::PATCH, "/users/me", &extra, Some(body))
            .await
    }

    async fn password_sign_in(&self, body: Value) -> Answer {
        self.post("/auth/password/sign-in", &[], body).await
    }

    /// Signs in with the password; returns (access token, refresh token).
    async fn sign_in(&self, email: &str) -> (String, String) {
        let v = self
            .password_sign_in(json!({ "email": email, "password": STACK_PASSWORD }))
            .await
            .ok();
        (
            v["access_token"].as_str().unwrap().to_owned(),
            v["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn refresh(&self, rt: &str) -> Answer {
        self.post(
            "/auth/sessions/current/refresh",
            &[("x-stack-refresh-token", rt)],
            json!({}),
        )
        .await
    }
}

#[tokio::test]
async fn stack_password_refresh_teams_switch_and_sign_out() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let (at, rt) = stack.sign_in("alice@example.com").await;

    // The access token and the JWKS.
    let jwks = stack_jwks(&fake, "").await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    assert!(
        jwks.headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("max-age=3600")
    );
    let key = &jwks.body["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(key["alg"], "ES256");
    let header = jwt_part(&at, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], key["kid"]);
    let claims = jwt_part(&at, 1);
    assert_eq!(
        claims["iss"],
        format!("{}/api/v1/projects/{}", fake.base_url, fake.project_id)
    );
    assert_eq!(claims["aud"], fake.project_id);
    assert_eq!(claims["sub"], stack_fixture::ALICE_ID);
    assert_eq!(claims["project_id"], fake.project_id);
    assert_eq!(claims["branch_id"], "main");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["is_anonymous"], false);
    assert_eq!(claims["selected_team_id"], stack_fixture::TEAM_ACME);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let rt_id = claims["refresh_token_id"].as_str().unwrap().to_owned();

    // Wrong password.
    stack
        .password_sign_in(json!({ "email": "alice@example.com", "password": "nope" }))
        .await
        .known(400, "EMAIL_PASSWORD_MISMATCH");

    // Refresh: only an access token, the refresh token never rotates.
    let got = stack.refresh(&rt).await.ok();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token"]);
    let at2 = got["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at2, 1)["refresh_token_id"], rt_id.as_str());
    assert_eq!(
        stack.refresh(&rt).await.status,
        200,
        "the same RT keeps working"
    );

    // Teams, and switching the selected team.
    let teams = stack
        .get("/teams?user_id=me", &[("x-stack-access-token", &at)])
        .await
        .ok();
    let names: Vec<&str> = teams["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Team Acme", "Team Globex"]);
    let me = stack.me(&at).await.ok();
    assert_eq!(me["id"], stack_fixture::ALICE_ID);
    assert_eq!(me["primary_email"], "alice@example.com");
    assert_eq!(me["selected_team"]["display_name"], "Team Acme");
    let to_globex = json!({ "selected_team_id": stack_fixture::TEAM_GLOBEX });
    let patched = stack.patch_me(&at, to_globex.clone()).await.ok();
    assert_eq!(patched["selected_team_id"], stack_fixture::TEAM_GLOBEX);
    assert_eq!(
        jwt_part(&at, 1)["selected_team_id"],
        stack_fixture::TEAM_ACME,
        "old token unchanged"
    );
    let refreshed = stack.refresh(&rt).await.body;
    assert_eq!(
        jwt_part(refreshed["access_token"].as_str().unwrap(), 1)["selected_team_id"],
        stack_fixture::TEAM_GLOBEX
    );

    // bob is not in Team Globex; garbage and unknown fields are schema errors.
    let (bob_at, _) = stack.sign_in("bob@example.com").await;
    let details = stack
        .patch_me(&bob_at, to_globex)
        .await
        .known(404, "TEAM_MEMBERSHIP_NOT_FOUND");
    assert_eq!(details["team_id"], stack_fixture::TEAM_GLOBEX);
    for body in [
        json!({ "selected_team_id": "team-globex" }),
        json!({ "selected_team": "x" }),
    ] {
        stack
            .patch_me(&bob_at, body)
            .await
            .known(400, "SCHEMA_ERROR");
    }

    // The project.
    let project = stack.get("/projects/current", &[]).await.ok();
    assert_eq!(project["id"], fake.project_id);
    assert!(project["config"]["oauth_providers"].is_array());

    // An expired access token: 401 ACCESS_TOKEN_EXPIRED; a refresh fixes it.
    fake.advance_clock(601).await;
    let details = stack.me(&at).await.known(401, "ACCESS_TOKEN_EXPIRED");
    assert!(details["expired_at_millis"].is_number());
    // … or as 200 + x-stack-actual-status when the client asks for it.
    let overridden = stack
        .get(
            "/users/me",
            &[
                ("x-stack-access-token", &at),
                ("x-stack-override-error-status", "true"),
            ],
        )
        .await;
    assert_eq!(overridden.status, 200);
    assert_eq!(overridden.headers["x-stack-actual-status"], "401");
    assert_eq!(
        overridden.headers["x-stack-known-error"],
        "ACCESS_TOKEN_EXPIRED"
    );
    assert_eq!(overridden.body["code"], "ACCESS_TOKEN_EXPIRED");
    let fresh = stack.refresh(&rt).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stack.me(&fresh).await.status, 200);

    // Sign out: deletes the refresh token named by the access token.
    let signed_out = stack
        .call(
            reqwest::Method::DELETE,
            "/auth/sessions/current",
            &[("x-stack-access-token", &fresh)],
            Some(json!({})),
        )
        .await
        .ok();
    assert_eq!(signed_out, json!({ "success": true }));
    for dead in [rt.as_str(), "never-issued"] {
        stack
            .refresh(dead)
            .await
            .known(401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED");
    }

    // The request log carries the headers, never the tokens.
    let log = fake.requests().await;
    let refreshes: Vec<&Value> = log
        .iter()
        .filter(|r| r["path"] == "/api/v1/auth/sessions/current/refresh")
        .collect();
    assert!(!refreshes.is_empty());
    for r in refreshes {
        assert_eq!(r["headers"]["x-stack-refresh-token"], "present");
        assert_eq!(r["headers"]["x-stack-access-type"], "client");
        assert_eq!(r["headers"]["x-stack-project-id"], fake.project_id.as_str());
    }
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&rt) && !text.contains(&at), "tokens leaked");
}

#[tokio::test]
async fn stack_rejects_missing_headers_and_unknown_input() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let body = json!({ "email": "alice@example.com", "password": STACK_PASSWORD });
    let sign_in = fake.api("/auth/password/sign-in");
    let sign_in_with = |headers: Vec<(&'static str, String)>| {
        let mut req = http().post(&sign_in).json(&body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        send(req)
    };
    let all = stack_headers(&fake);
    let without = |name: &str| {
        all.iter()
            .filter(|(k, _)| *k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let replaced = |name: &'static str, value: &str| {
        let mut headers = without(name);
        headers.push((name, value.to_owned()));
        headers
    };
    let branch = [all.clone(), vec![("x-stack-branch-id", "dev".to_owned())]].concat();

    for (headers, status, code) in [
        (vec![], 400, "ACCESS_TYPE_REQUIRED"),
        (
            without("x-stack-access-type"),
            400,
            "PROJECT_KEY_WITHOUT_ACCESS_TYPE",
        ),
        (
            without("x-stack-project-id"),
            400,
            "ACCESS_TYPE_WITHOUT_PROJECT_ID",
        ),
        (
            without("x-stack-publishable-client-key"),
            401,
            "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT",
        ),
        (
            replaced("x-stack-publishable-client-key", "pck_wrong"),
            401,
            "INVALID_PUBLISHABLE_CLIENT_KEY",
        ),
        (
            replaced("x-stack-access-type", "browser"),
            400,
            "INVALID_ACCESS_TYPE",
        ),
        (
            replaced("x-stack-access-type", "server"),
            401,
            "INVALID_SECRET_SERVER_KEY",
        ),
        (branch, 400, "BRANCH_DOES_NOT_EXIST"),
    ] {
        sign_in_with(headers).await.known(status, code);
    }

    // Unknown body fields, missing fields, garbage JSON, a body on refresh.
    for body in [
        json!({ "email": "alice@example.com", "password": "demo", "remember": true }),
        json!({ "email": "alice@example.com" }),
    ] {
        stack
            .password_sign_in(body)
            .await
            .known(400, "SCHEMA_ERROR");
    }
    let garbage = stack
        .req(reqwest::Method::POST, "/auth/password/sign-in", &[])
        .header("content-type", "application/json")
        .body("{not json");
    send(garbage).await.known(400, "BODY_PARSING_ERROR");
    let (_, rt) = stack.sign_in("bob@example.com").await;
    stack
        .post(
            "/auth/sessions/current/refresh",
            &[("x-stack-refresh-token", &rt)],
            json!({ "refresh_token": rt }),
        )
        .await
        .known(400, "SCHEMA_ERROR");
    stack
        .post("/auth/sessions/current/refresh", &[], json!({}))
        .await
        .known(400, "SCHEMA_ERROR");
    stack
        .get("/users/me", &[])
        .await
        .known(400, "CANNOT_GET_OWN_USER_WITHOUT_USER");
    stack
        .me("garbage")
        .await
        .known(401, "UNPARSABLE_ACCESS_TOKEN");
    stack
        .get("/teams?user_id=me&limit=5", &[])
        .await
        .known(400, "SCHEMA_ERROR");

    // Unknown paths: Stack's own plain-text 404 (no known error).
    let missing = stack.get("/auth/oidc/token", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers.get("x-stack-known-error").is_none());
    assert!(
        missing
            .body
            .as_str()
            .unwrap()
            .contains("this page does not exist in Stack Auth's API"),
        "{}",
        missing.body
    );
    assert_eq!(send(http().get(fake.url("/v1/users/me"))).await.status, 404);
}

#[tokio::test]
async fn stack_email_code_through_the_outbox() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let send_code = |email: &str, callback_url: &str| {
        let body = json!({ "email": email, "callback_url": callback_url });
        stack.post("/auth/otp/send-sign-in-code", &[], body)
    };
    let sign_in = |code: &str| stack.post("/auth/otp/sign-in", &[], json!({ "code": code }));

    let sent = send_code("bob@example.com", "http://127.0.0.1:8765/magic-link")
        .await
        .ok();
    let nonce = sent["nonce"].as_str().unwrap();
    let code = fake.latest_code_to("bob@example.com").await;
    assert_eq!(code.len(), 45);
    assert!(code.ends_with(nonce));
    let link = fake.latest_link_to("bob@example.com").await;
    assert_eq!(param(&link, "code").as_deref(), Some(code.as_str()));
    assert!(link.starts_with("http://127.0.0.1:8765/magic-link?code="));
    let mail = fake.outbox().await;
    let otp = mail.last().unwrap()["otp"].as_str().unwrap().to_owned();
    assert_eq!(otp, code[..6].to_uppercase());

    // What the person types (6 characters, upper case) + the nonce = the code.
    let signed = sign_in(&format!("{otp}{nonce}")).await.ok();
    assert_eq!(signed["user_id"], stack_fixture::BOB_ID);
    assert_eq!(signed["is_new_user"], false);
    assert!(signed["refresh_token"].is_string());
    sign_in(&code)
        .await
        .known(409, "VERIFICATION_CODE_ALREADY_USED");
    sign_in(&"x".repeat(45))
        .await
        .known(404, "VERIFICATION_CODE_NOT_FOUND");
    sign_in(&otp).await.known(400, "SCHEMA_ERROR");
    send_code("bob@example.com", "dev.tessera:/callback")
        .await
        .known(400, "REDIRECT_URL_NOT_WHITELISTED");

    // Waiting for the next mail, not the latest one already there.
    let seen = fake.mail_count_to("bob@example.com").await;
    assert_eq!(seen, 1);
    send_code("bob@example.com", "https://app.example.com/magic").await;
    let second = fake.next_code_to("bob@example.com", seen).await;
    assert_ne!(second, code);
    assert_eq!(fake.latest_code_to("bob@example.com").await, second);

    // A new address signs up.
    send_code("dave@example.com", "http://localhost:3000/x").await;
    let code = fake.latest_code_to("dave@example.com").await;
    let dave = sign_in(&code).await.body;
    assert_eq!(dave["is_new_user"], true);
}

#[tokio::test]
async fn stack_oauth_authorize_and_token_with_pkce() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let redirect = "http://127.0.0.1:47001/callback";
    let (verifier, challenge) = pkce();
    let authorize = |provider: &str, client_secret: &str, redirect_uri: &str| {
        let mut url = Url::parse(&fake.api(&format!("/auth/oauth/authorize/{provider}"))).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &fake.project_id)
            .append_pair("client_secret", client_secret)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "legacy")
            .append_pair("state", "state-123")
            .append_pair("grant_type", "authorization_code")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("response_type", "code");
        send(http().get(url))
    };

    fake.set_oauth_user("bob@example.com").await;
    let authorized = authorize("github", &fake.publishable_key, redirect).await;
    assert_eq!(authorized.status, 307, "{}", authorized.body);
    let location = authorized.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(redirect), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("state-123"));
    let code = param(&location, "code").unwrap();

    let token_url = fake.api("/auth/oauth/token");
    let token = |form: Vec<(&'static str, String)>| send(http().post(&token_url).form(&form));
    let base = |verifier: &str, redirect_uri: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_verifier", verifier.to_owned()),
            ("client_id", fake.project_id.clone()),
            ("client_secret", fake.publishable_key.clone()),
        ]
    };
    token(base(&pkce().0, redirect))
        .await
        .known(400, "INVALID_AUTHORIZATION_CODE");
    let other_redirect = token(base(&verifier, "http://127.0.0.1:47002/callback")).await;
    assert_eq!(other_redirect.status, 400, "{}", other_redirect.body);
    let mut wrong_secret = base(&verifier, redirect);
    wrong_secret[5].1 = "pck_wrong".to_owned();
    token(wrong_secret)
        .await
        .known(400, "INVALID_OAUTH_CLIENT_ID_OR_SECRET");
    let tokens = token(base(&verifier, redirect)).await.ok();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["is_new_user"], false);
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["sub"],
        stack_fixture::BOB_ID
    );
    token(base(&verifier, redirect))
        .await
        .known(400, "INVALID_AUTHORIZATION_CODE");

    // The refresh grant: same refresh token back.
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let v = token(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", rt.clone()),
        ("client_id", fake.project_id.clone()),
        ("client_secret", fake.publishable_key.clone()),
    ])
    .await
    .ok();
    assert_eq!(v["refresh_token"], rt.as_str());
    assert!(v["access_token"].is_string());
    // JSON is not accepted at the token endpoint.
    let as_json = send(
        http()
            .post(&token_url)
            .json(&json!({ "grant_type": "refresh_token", "refresh_token": rt })),
    )
    .await;
    assert_eq!(as_json.status, 400, "{}", as_json.body);
    assert_eq!(as_json.body["error"], "invalid_request");
    assert_eq!(
        stack.refresh(&rt).await.status,
        200,
        "OAuth refresh tokens refresh the usual way too"
    );

    // Rejected authorizations.
    let publishable = fake.publishable_key.as_str();
    for (provider, client_secret, redirect_uri, status, code) in [
        (
            "github",
            publishable,
            "dev.tessera:/callback",
            400,
            "REDIRECT_URL_NOT_WHITELISTED",
        ),
        (
            "github",
            "pck_wrong",
            redirect,
            401,
            "INVALID_PUBLISHABLE_CLIENT_KEY",
        ),
        (
            "github",
            "__stack_public_client__",
            redirect,
            401,
            "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT",
        ),
        (
            "myspace",
            publishable,
            redirect,
            400,
            "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED",
        ),
    ] {
        authorize(provider, client_secret, redirect_uri)
            .await
            .known(status, code);
    }
    let mobile = authorize(
        "google",
        publishable,
        "stack-auth-mobile-oauth-url://success",
    )
    .await;
    assert_eq!(mobile.status, 307);
    assert!(
        mobile.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("stack-auth-mobile-oauth-url://success?code=")
    );
}

#[tokio::test]
async fn stack_mfa_anonymous_and_cli() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);

    // carol has TOTP: password sign-in is refused with an attempt code.
    let details = stack
        .password_sign_in(json!({ "email": "carol@example.com", "password": STACK_PASSWORD }))
        .await
        .known(400, "MULTI_FACTOR_AUTHENTICATION_REQUIRED");
    let attempt = details["attempt_code"].as_str().unwrap().to_owned();
    assert_eq!(attempt.len(), 45);
    let mfa_sign_in = |totp: &str| {
        let body = json!({ "type": "totp", "totp": totp, "code": attempt });
        stack.post("/auth/mfa/sign-in", &[], body)
    };
    mfa_sign_in("000000").await.known(400, "INVALID_TOTP_CODE");
    let totp = fake.totp("carol@example.com").await;
    let v = mfa_sign_in(&totp).await.ok();
    assert_eq!(v["user_id"], stack_fixture::CAROL_ID);
    assert_eq!(
        jwt_part(v["access_token"].as_str().unwrap(), 1)["requires_totp_mfa"],
        true
    );

    // Anonymous users: their own issuer/audience; refused unless the client allows them.
    let anon = stack
        .post("/auth/anonymous/sign-up", &[], json!({}))
        .await
        .ok();
    let at = anon["access_token"].as_str().unwrap();
    let claims = jwt_part(at, 1);
    assert_eq!(claims["aud"], format!("{}:anon", fake.project_id));
    assert_eq!(
        claims["iss"],
        format!(
            "{}/api/v1/projects-anonymous-users/{}",
            fake.base_url, fake.project_id
        )
    );
    assert_eq!(claims["is_anonymous"], true);
    stack
        .me(at)
        .await
        .known(401, "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED");
    let me = stack
        .get(
            "/users/me",
            &[
                ("x-stack-access-token", at),
                ("x-stack-allow-anonymous-user", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(me["is_anonymous"], true);
    let jwks = stack_jwks(&fake, "?include_anonymous=true").await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    // The CLI login: waiting → approved (201 + refresh token) → used.
    let cli = stack.post("/auth/cli", &[], json!({})).await.ok();
    let polling = cli["polling_code"].as_str().unwrap().to_owned();
    let poll = || stack.post("/auth/cli/poll", &[], json!({ "polling_code": polling }));
    assert_eq!(poll().await.body["status"], "waiting");
    fake.approve_cli(cli["login_code"].as_str().unwrap(), "alice@example.com")
        .await;
    let done = poll().await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.body["status"], "success");
    assert_eq!(
        stack
            .refresh(done.body["refresh_token"].as_str().unwrap())
            .await
            .status,
        200
    );
    assert_eq!(poll().await.body["status"], "used");
}
