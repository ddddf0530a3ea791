//! End-to-end checks of the provider fakes in tests/fakes (Stytch B2B, Stack Auth), driven the
//! way a client would with plain reqwest (no Tessera code involved): every documented flow and
//! every rejection the fakes implement.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::{http, jwt_part, param, pkce};
use tessera_testkit::fakes::{stack_fixture, stytch_fixture};
use tessera_testkit::{
    Browser, Landing, StackFake, StackFakeOptions, StytchFake, StytchFakeOptions,
};
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

/// The app the fakes' SDK callers name: the one [`StytchFakeOptions`] authorizes by default.
const APP: &str = "dev.tessera";

/// `X-SDK-Client` as the official SDKs build it: base64 of `{sdk, app, os, device}`.
fn sdk_client(app: &str) -> String {
    let info = json!({
        "sdk": { "identifier": "tessera-testkit", "version": "1.0.0" },
        "app": { "identifier": app, "version": "1.0.0" },
        "os": { "identifier": "linux", "version": "6" },
        "device": { "model": "test", "screen_size": "" },
    });
    STANDARD.encode(info.to_string())
}

/// A Stytch fake with these registered discovery redirect URLs (the first is the default).
async fn stytch_with_redirects(redirects: &[&str]) -> StytchFake {
    StytchFake::start_with(StytchFakeOptions {
        redirect_urls: redirects.iter().map(|r| (*r).to_owned()).collect(),
        ..StytchFakeOptions::default()
    })
    .await
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
    let mut req = http().post(url).basic_auth(user, Some(pass)).json(&body);
    if !matches!(api, Api::Backend) {
        req = req.header("x-sdk-client", sdk_client(APP));
    }
    send(req).await
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
    let loopback = "http://127.0.0.1:53124/callback";
    let fake = stytch_with_redirects(&["dev.tessera:/callback", loopback]).await;
    let (verifier, challenge) = pkce();

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
            .basic_auth(&fake.public_token, Some(&session))
            .header("x-sdk-client", sdk_client(APP));
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

    // Revoke (no body) → the header's session is gone: as Basic password it is now refused like
    // any unknown one.
    sdk(SESSION_REVOKE, json!({})).await.sdk_data();
    sdk(SESSION_AUTHENTICATE, json!({}))
        .await
        .stytch_error(401, "unauthorized_credentials");
    stytch(&fake, Api::SdkAnon, SESSION_AUTHENTICATE, json!({}))
        .await
        .stytch_error(404, "session_not_found");

    let log = fake.requests().await;
    assert!(log.iter().any(|r| r["family"] == "sdk"
        && r["path"] == "/sdk/v1/b2b/sessions/authenticate"
        && r["auth"]["password"] == "session_token"
        && r["headers"]["x-sdk-client"] == json!({ "sdk": "tessera-testkit", "app": APP })));
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
    // Unregistered redirect URLs (the default project registered dev.tessera:/callback only).
    for redirect in [
        "dev.tessera:/elsewhere",
        "https://evil.example.com/callback",
        "http://localhost/callback",
        "http://127.0.0.1:5000/callback",
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
    let loopback = "http://127.0.0.1:40000/callback";
    let fake = stytch_with_redirects(&["dev.tessera:/callback", loopback]).await;

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
    let authed = stytch_discover(&fake, ALICE, loopback).await;
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

#[tokio::test]
async fn stytch_redirect_urls_match_exactly_what_the_project_registered() {
    let registered = "http://127.0.0.1:8714/callback";
    let fake = stytch_with_redirects(&[
        registered,
        "dev.tessera:/callback",
        "https://www.example.com/magic?from=stytch",
    ])
    .await;
    let send_to = |redirect: Option<&str>| {
        let mut body = json!({ "email_address": ALICE });
        if let Some(redirect) = redirect {
            body["discovery_redirect_url"] = json!(redirect);
        }
        backend(&fake, MAGIC_LINK_SEND, body)
    };

    // Exactly what was registered; the first registration is the default.
    for (redirect, link_starts) in [
        (Some(registered), registered),
        (None, registered),
        (Some("dev.tessera:/callback"), "dev.tessera:/callback"),
        // Stytch treats www.example.com and example.com as one domain.
        (
            Some("https://example.com/magic?from=stytch"),
            "https://example.com/magic?from=stytch",
        ),
    ] {
        let seen = fake.mail_count_to(ALICE).await;
        send_to(redirect).await.ok();
        let link = fake.next_link_to(ALICE, seen).await;
        assert!(
            link.starts_with(&format!("{link_starts}?stytch_token_type=discovery&token="))
                || link.starts_with(&format!("{link_starts}&stytch_token_type=discovery&token=")),
            "{redirect:?}: {link}"
        );
    }

    // Anything else: another port, no port, another loopback name, path, query or scheme.
    for redirect in [
        "http://127.0.0.1:8715/callback",
        "http://127.0.0.1/callback",
        "http://localhost:8714/callback",
        "http://127.0.0.1:8714/callback/",
        "http://127.0.0.1:8714/callback?port=8714",
        "https://127.0.0.1:8714/callback",
        "https://example.com/magic",
        "dev.tessera:/callback?x=1",
    ] {
        send_to(Some(redirect))
            .await
            .stytch_error(400, "no_match_for_provided_magic_link_url");
    }

    // The default project registered no loopback address at all.
    let plain = StytchFake::start().await;
    backend(
        &plain,
        MAGIC_LINK_SEND,
        json!({ "email_address": ALICE, "discovery_redirect_url": "http://127.0.0.1:53124/callback" }),
    )
    .await
    .stytch_error(400, "no_match_for_provided_magic_link_url");
}

/// Signs alice into acme through the backend API; returns the exchange answer.
async fn stytch_acme_session(fake: &StytchFake) -> Value {
    let authed = stytch_discover(fake, ALICE, "dev.tessera:/callback").await;
    exchange_ist(
        fake,
        &authed["intermediate_session_token"],
        json!({ "organization_id": "acme" }),
    )
    .await
    .ok()
}

#[tokio::test]
async fn stytch_custom_domain_issues_session_jwts_with_its_base_url_as_issuer() {
    let fake = StytchFake::start_with(StytchFakeOptions {
        custom_domain: true,
        ..StytchFakeOptions::default()
    })
    .await;
    assert_eq!(fake.issuer, fake.base_url);
    let session = stytch_acme_session(&fake).await;
    let jwt = session["session_jwt"].as_str().unwrap();
    assert_eq!(jwt_part(jwt, 1)["iss"], fake.base_url.as_str());
    assert!(!fake.base_url.ends_with('/'));
    // The custom-domain JWT authenticates (and is re-minted with the same issuer).
    let again = backend(&fake, SESSION_AUTHENTICATE, json!({ "session_jwt": jwt }))
        .await
        .ok();
    assert_eq!(
        jwt_part(again["session_jwt"].as_str().unwrap(), 1)["iss"],
        fake.base_url.as_str()
    );

    // On Stytch's own domain the issuer is stytch.com/{project_id}, not the base URL.
    let plain = StytchFake::start().await;
    let expected = format!("stytch.com/{}", plain.project_id);
    assert_eq!(plain.issuer, expected);
    let session = stytch_acme_session(&plain).await;
    assert_eq!(
        jwt_part(session["session_jwt"].as_str().unwrap(), 1)["iss"],
        expected
    );
}

/// An SDK call with these headers (and `public_token:public_token`).
async fn sdk_call(fake: &StytchFake, path: &str, headers: &[(&str, &str)], body: Value) -> Answer {
    let mut req = http()
        .post(fake.url(&format!("/sdk/v1/{path}")))
        .basic_auth(&fake.public_token, Some(&fake.public_token))
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req).await
}

#[tokio::test]
async fn stytch_sdk_calls_need_x_sdk_client_an_authorized_caller_and_session_duration() {
    let fake = StytchFake::start_with(StytchFakeOptions {
        authorized_domains: vec!["https://app.example.com".to_owned()],
        ..StytchFakeOptions::default()
    })
    .await;
    let send_mail = json!({ "email_address": ALICE, "pkce_code_challenge": pkce().1 });
    let tessera = sdk_client(APP);
    let other_app = sdk_client("com.example.other");
    let not_base64 = "{\"sdk\":{}}".to_owned();
    let no_version = STANDARD
        .encode(json!({ "sdk": { "identifier": "x" }, "app": { "identifier": APP } }).to_string());

    for (headers, status, error_type) in [
        (vec![], 400, "bad_request"),
        (
            vec![("x-sdk-client", not_base64.as_str())],
            400,
            "bad_request",
        ),
        (
            vec![("x-sdk-client", no_version.as_str())],
            400,
            "bad_request",
        ),
        (
            vec![("x-sdk-client", other_app.as_str())],
            403,
            "invalid_mobile_identifier",
        ),
        (
            vec![
                ("x-sdk-client", tessera.as_str()),
                ("origin", "https://evil.example.com"),
            ],
            403,
            "bad_domain_for_stytch_sdk",
        ),
        (
            vec![
                ("x-sdk-client", tessera.as_str()),
                ("x-sdk-parent-host", "https://evil.example.com"),
            ],
            403,
            "bad_domain_for_stytch_sdk",
        ),
    ] {
        sdk_call(&fake, MAGIC_LINK_SEND, &headers, send_mail.clone())
            .await
            .stytch_error(status, error_type);
    }
    assert!(fake.outbox().await.is_empty(), "refused calls mail nothing");
    // An authorized app, or a browser on an authorized domain.
    for headers in [
        vec![("x-sdk-client", tessera.as_str())],
        vec![
            ("x-sdk-client", other_app.as_str()),
            ("x-sdk-parent-host", "https://app.example.com"),
        ],
    ] {
        sdk_call(&fake, MAGIC_LINK_SEND, &headers, send_mail.clone())
            .await
            .sdk_data();
    }
    // The backend API takes no X-SDK-Client.
    backend(&fake, MAGIC_LINK_SEND, json!({ "email_address": BOB }))
        .await
        .ok();

    // The IST exchange through the SDK needs session_duration_minutes (the backend's does not).
    let (verifier, challenge) = pkce();
    send_link(
        &fake,
        Api::SdkAnon,
        ALICE,
        "dev.tessera:/callback",
        &challenge,
    )
    .await
    .sdk_data();
    let link = fake.latest_link_to(ALICE).await;
    let authed = redeem_link(&fake, Api::SdkAnon, &link, &verifier)
        .await
        .sdk_data();
    let ist = authed["intermediate_session_token"].clone();
    let exchange = |fields: Value| {
        let mut body = fields;
        body["intermediate_session_token"] = ist.clone();
        stytch(&fake, Api::SdkAnon, IST_EXCHANGE, body)
    };
    exchange(json!({ "organization_id": "acme" }))
        .await
        .stytch_error(400, "bad_request");
    let session = exchange(json!({ "organization_id": "acme", "session_duration_minutes": 60 }))
        .await
        .sdk_data();
    assert_eq!(session["member_authenticated"], true);

    let log = fake.requests().await;
    let refused: Vec<&Value> = log
        .iter()
        .filter(|r| r["family"] == "sdk" && r["status"] != 200)
        .collect();
    assert_eq!(refused[0]["headers"]["x-sdk-client"], Value::Null);
    assert_eq!(refused[1]["headers"]["x-sdk-client"], "malformed");
    assert_eq!(
        refused[3]["headers"]["x-sdk-client"],
        json!({ "sdk": "tessera-testkit", "app": "com.example.other" })
    );
    assert_eq!(refused[4]["headers"]["origin"], "https://evil.example.com");
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

/// Stack's `GET /auth/oauth/authorize/{provider}` URL as a client builds it, with `state-123`,
/// the S256 `challenge` and the `extra` query parameters.
fn stack_authorize_url(
    fake: &StackFake,
    provider: &str,
    client_secret: &str,
    redirect_uri: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = Url::parse(&fake.api(&format!("/auth/oauth/authorize/{provider}"))).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &fake.project_id)
        .append_pair("client_secret", client_secret)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "legacy")
        .append_pair("state", "state-123")
        .append_pair("grant_type", "authorization_code")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("response_type", "code")
        .extend_pairs(extra);
    url.to_string()
}

#[tokio::test]
async fn stack_oauth_authorize_and_token_with_pkce() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let redirect = "http://127.0.0.1:47001/callback";
    let (verifier, challenge) = pkce();
    let authorize_url = |provider: &str, client_secret: &str, redirect_uri: &str| {
        stack_authorize_url(
            &fake,
            provider,
            client_secret,
            redirect_uri,
            &challenge,
            &[],
        )
    };
    let authorize = |provider: &str, client_secret: &str, redirect_uri: &str| {
        send(http().get(authorize_url(provider, client_secret, redirect_uri)))
    };

    // The browser goes to the upstream provider, which signs bob in, and back through Stack.
    fake.set_oauth_user("bob@example.com").await;
    let location = Browser::new()
        .login(
            &authorize_url("github", &fake.publishable_key, redirect),
            "bob@example.com",
        )
        .await;
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
    let mobile = Browser::new()
        .login(
            &authorize_url(
                "google",
                publishable,
                "stack-auth-mobile-oauth-url://success",
            ),
            "bob@example.com",
        )
        .await;
    assert!(
        mobile.starts_with("stack-auth-mobile-oauth-url://success?code="),
        "{mobile}"
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
    assert_eq!(claims["is_restricted"], true);
    assert_eq!(claims["restricted_reason"], json!({ "type": "anonymous" }));
    let jwks = stack_jwks(&fake, "?include_anonymous=true").await.body;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids.len(), 6, "normal, restricted and anonymous keys");
    assert!(kids.contains(&&jwt_part(at, 0)["kid"]));

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

#[tokio::test]
async fn stack_restricted_users_when_the_project_requires_a_verified_email() {
    let fake = StackFake::start_with(StackFakeOptions {
        require_email_verification: true,
        ..StackFakeOptions::default()
    })
    .await;
    let stack = Stack::new(&fake);
    let (at, rt) = stack.sign_in("erin@example.com").await;

    // erin's e-mail is not verified: a restricted token, its own issuer, audience and keys.
    let claims = jwt_part(&at, 1);
    assert_eq!(
        claims["iss"],
        format!(
            "{}/api/v1/projects-restricted-users/{}",
            fake.base_url, fake.project_id
        )
    );
    assert_eq!(claims["aud"], format!("{}:restricted", fake.project_id));
    assert_eq!(claims["sub"], stack_fixture::ERIN_ID);
    assert_eq!(claims["is_restricted"], true);
    assert_eq!(claims["email_verified"], false);
    assert_eq!(
        claims["restricted_reason"],
        json!({ "type": "email_not_verified" })
    );
    let kid = jwt_part(&at, 0)["kid"].clone();
    let published = |query: &'static str| {
        let fake = &fake;
        async move {
            stack_jwks(fake, query).await.body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].clone())
                .collect::<Vec<Value>>()
        }
    };
    assert!(!published("").await.contains(&kid));
    assert!(published("?include_restricted=true").await.contains(&kid));

    // Later calls need x-stack-allow-restricted-user.
    let details = stack
        .me(&at)
        .await
        .known(403, "RESTRICTED_USER_NOT_ALLOWED");
    assert_eq!(
        details["restricted_reason"],
        json!({ "type": "email_not_verified" })
    );
    stack
        .get("/teams?user_id=me", &[("x-stack-access-token", &at)])
        .await
        .known(403, "RESTRICTED_USER_NOT_ALLOWED");
    let me = stack
        .get(
            "/users/me",
            &[
                ("x-stack-access-token", &at),
                ("x-stack-allow-restricted-user", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(me["is_restricted"], true);
    assert_eq!(me["primary_email_verified"], false);

    // Refreshing keeps it restricted until the e-mail is verified at Stack.
    let again = stack.refresh(&rt).await.ok();
    assert_eq!(
        jwt_part(again["access_token"].as_str().unwrap(), 1)["aud"],
        format!("{}:restricted", fake.project_id)
    );
    fake.verify_email("erin@example.com").await;
    let verified = stack.refresh(&rt).await.ok();
    let fresh = verified["access_token"].as_str().unwrap();
    let claims = jwt_part(fresh, 1);
    assert_eq!(claims["aud"], fake.project_id);
    assert_eq!(claims["is_restricted"], false);
    assert_eq!(stack.me(fresh).await.ok()["is_restricted"], false);

    // Verified users are not restricted; nor is erin at a project that does not require it.
    let (alice_at, _) = stack.sign_in("alice@example.com").await;
    assert_eq!(jwt_part(&alice_at, 1)["aud"], fake.project_id);
    let lenient = StackFake::start().await;
    let (erin_at, _) = Stack::new(&lenient).sign_in("erin@example.com").await;
    let claims = jwt_part(&erin_at, 1);
    assert_eq!(claims["aud"], lenient.project_id);
    assert_eq!(
        (&claims["is_restricted"], &claims["email_verified"]),
        (&json!(false), &json!(false))
    );
}

/// The first answer of Stack's authorize endpoint to a browser without cookies.
async fn stack_authorize_answer(url: &str) -> Answer {
    send(http().get(url)).await
}

/// The JSON body of a page the browser landed on.
#[track_caller]
fn landed_page(landing: Landing) -> (u16, Value) {
    match landing {
        Landing::Page { status, body, .. } => (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ),
        Landing::Away(raw) => panic!("expected a page at Stack, the browser left to {raw}"),
    }
}

#[tokio::test]
async fn stack_oauth_checks_the_return_address_at_the_callback_after_the_upstream_provider() {
    let fake = StackFake::start().await;
    let (_, challenge) = pkce();
    let url = |redirect_uri: &str, extra: &[(&str, &str)]| {
        stack_authorize_url(
            &fake,
            "github",
            &fake.publishable_key,
            redirect_uri,
            &challenge,
            extra,
        )
    };

    // An untrusted return address (and an unknown parameter) still gets a 307 to the upstream
    // provider: nothing is checked yet.
    let untrusted = url("dev.tessera:/callback", &[("prompt", "select_account")]);
    let first = stack_authorize_answer(&untrusted).await;
    assert_eq!(first.status, 307, "{}", first.body);
    let upstream = first.headers["location"].to_str().unwrap();
    assert!(
        upstream.starts_with(&fake.url("/upstream/github/authorize?")),
        "{upstream}"
    );
    assert!(
        first.headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("stack-oauth-inner-"),
        "the inner-state cookie"
    );
    // The browser comes back from the upstream provider to Stack, which refuses only now: an
    // error page at Stack, nothing reaches the app.
    let (status, body) = landed_page(
        Browser::new()
            .follow_login(&untrusted, "alice@example.com")
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(body["code"], "REDIRECT_URL_NOT_WHITELISTED", "{body}");
    // … or its error_redirect_uri, when that is trusted.
    let with_error_page = url(
        "dev.tessera:/callback",
        &[("error_redirect_uri", "http://localhost:3000/oops")],
    );
    let away = Browser::new()
        .login(&with_error_page, "alice@example.com")
        .await;
    assert!(away.starts_with("http://localhost:3000/oops?"), "{away}");
    assert_eq!(
        param(&away, "errorCode").as_deref(),
        Some("REDIRECT_URL_NOT_WHITELISTED")
    );

    // Stack's localhost: localhost and 127.x.x.x at any port, not [::1]; trusted domains by
    // scheme, host and port.
    for (redirect, trusted) in [
        ("http://127.0.0.1:47001/cb", true),
        ("http://localhost:47001/cb", true),
        ("http://127.0.0.2/cb", true),
        ("https://app.example.com/cb", true),
        ("http://[::1]:47001/cb", false),
        ("https://app.example.com:8443/cb", false),
        ("http://app.example.com/cb", false),
    ] {
        let landing = Browser::new()
            .follow_login(&url(redirect, &[]), "alice@example.com")
            .await;
        match landing {
            Landing::Away(to) => {
                assert!(trusted, "{redirect} was accepted: {to}");
                assert!(to.starts_with(redirect), "{to}");
            }
            page => {
                assert!(!trusted, "{redirect} was refused: {page:?}");
                assert_eq!(landed_page(page).1["code"], "REDIRECT_URL_NOT_WHITELISTED");
            }
        }
    }
    let stack = Stack::new(&fake);
    stack
        .post(
            "/auth/otp/send-sign-in-code",
            &[],
            json!({ "email": "bob@example.com", "callback_url": "http://[::1]:8765/magic-link" }),
        )
        .await
        .known(400, "REDIRECT_URL_NOT_WHITELISTED");

    // Nothing but the authorize requests and the callbacks reached Stack's API.
    let log = fake.requests().await;
    assert!(
        log.iter()
            .all(|r| r["path"].as_str().unwrap().starts_with("/api/v1/auth/"))
    );
}

#[tokio::test]
async fn stack_oauth_upstream_login_page_cancel_cookie_replay_and_timeout() {
    let fake = StackFake::start().await;
    let redirect = "http://127.0.0.1:47001/callback";
    let (verifier, challenge) = pkce();
    let url = |extra: &[(&str, &str)]| {
        stack_authorize_url(
            &fake,
            "github",
            &fake.publishable_key,
            redirect,
            &challenge,
            extra,
        )
    };
    let signed_in = |back: String| {
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", param(&back, "code").expect("a code")),
            ("redirect_uri", redirect.to_owned()),
            ("code_verifier", verifier.clone()),
            ("client_id", fake.project_id.clone()),
            ("client_secret", fake.publishable_key.clone()),
        ];
        let token_url = fake.api("/auth/oauth/token");
        async move {
            let tokens = send(http().post(token_url).form(&form)).await.ok();
            jwt_part(tokens["access_token"].as_str().unwrap(), 1)["email"].clone()
        }
    };

    // Nobody signed in at the upstream provider: its login page, filled in by the browser.
    fake.forget_oauth_user().await;
    let browser = Browser::new();
    let (back, shown) = browser.login_reporting(&url(&[]), "bob@example.com").await;
    assert!(shown, "the upstream login page was shown");
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(signed_in(back).await, "bob@example.com");
    // A new address at the upstream provider signs up at Stack.
    let dave = browser.login(&url(&[]), "dave@example.com").await;
    assert_eq!(signed_in(dave).await, "dave@example.com");

    // Cancelled at the upstream provider: Stack's error page, nothing for the app.
    let (status, body) = landed_page(Browser::new().follow_deny(&url(&[])).await);
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("OAUTH_PROVIDER_ACCESS_DENIED")),
        "{body}"
    );

    // The callback needs the browser's inner-state cookie, and works once.
    fake.set_oauth_user("alice@example.com").await;
    let mut hops = vec![url(&[])];
    let cookieless = loop {
        let answer = send(http().get(hops.last().unwrap())).await;
        match answer.headers.get("location") {
            Some(to) if hops.len() < 5 => hops.push(to.to_str().unwrap().to_owned()),
            _ => break answer,
        }
    };
    assert!(
        hops.last()
            .unwrap()
            .contains("/api/v1/auth/oauth/callback/github?"),
        "{hops:?}"
    );
    assert_eq!(cookieless.status, 400);
    assert!(
        cookieless
            .body
            .as_str()
            .unwrap()
            .contains("Inner OAuth cookie not found"),
        "{}",
        cookieless.body
    );
    let callback = hops.last().unwrap().clone();
    let replay = send(http().get(&callback)).await;
    assert_eq!(replay.status, 400, "{}", replay.body);

    // stack_response_mode=json: the upstream URL as JSON, no cookie needed at the callback.
    let json_mode = send(http().get(url(&[("stack_response_mode", "json")]))).await;
    assert_eq!(json_mode.status, 200, "{}", json_mode.body);
    assert!(json_mode.headers.get("set-cookie").is_none());
    let upstream = json_mode.body["location"].as_str().unwrap().to_owned();
    let to_callback = send(http().get(&upstream)).await;
    let callback = to_callback.headers["location"].to_str().unwrap().to_owned();
    let done = send(http().get(&callback)).await;
    assert_eq!(done.status, 307, "{}", done.body);
    assert!(
        done.headers["location"]
            .to_str()
            .unwrap()
            .starts_with(redirect)
    );

    // An OAuth flow lives 10 minutes between authorize and callback.
    let late = send(http().get(url(&[("stack_response_mode", "json")]))).await;
    let upstream = late.body["location"].as_str().unwrap().to_owned();
    let to_callback = send(http().get(&upstream)).await;
    fake.advance_clock(601).await;
    let expired = send(http().get(to_callback.headers["location"].to_str().unwrap())).await;
    expired.known(408, "OUTER_OAUTH_TIMEOUT");
}

#[tokio::test]
async fn stack_oauth_bot_challenge() {
    let fake = StackFake::start_with(StackFakeOptions {
        bot_challenge: true,
        ..StackFakeOptions::default()
    })
    .await;
    let redirect = "http://127.0.0.1:47001/callback";
    let (_, challenge) = pkce();
    let url = |extra: &[(&str, &str)]| {
        stack_authorize_url(
            &fake,
            "github",
            &fake.publishable_key,
            redirect,
            &challenge,
            extra,
        )
    };
    let passing = "XXXX.DUMMY.TOKEN.XXXX";

    // A client taking part in the challenge is stopped at authorize.
    send(http().get(url(&[("bot_challenge_phase", "invisible")])))
        .await
        .known(409, "BOT_CHALLENGE_REQUIRED");
    send(http().get(url(&[
        ("bot_challenge_phase", "visible"),
        ("bot_challenge_token", "forged"),
    ])))
    .await
    .known(400, "BOT_CHALLENGE_FAILED");

    // A client that does not (no phase) goes through; the project's sign-up rule then refuses
    // a new user at the callback, not an existing one.
    fake.set_oauth_user("mallory@example.com").await;
    let (status, body) = landed_page(
        Browser::new()
            .follow_login(&url(&[]), "mallory@example.com")
            .await,
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("SIGN_UP_REJECTED")),
        "{body}"
    );
    fake.set_oauth_user("alice@example.com").await;
    let alice = Browser::new().login(&url(&[]), "alice@example.com").await;
    assert!(alice.starts_with(redirect), "{alice}");
    // A passed challenge lets the new user sign up.
    fake.set_oauth_user("mallory@example.com").await;
    let mallory = Browser::new()
        .login(
            &url(&[
                ("bot_challenge_phase", "invisible"),
                ("bot_challenge_token", passing),
            ]),
            "mallory@example.com",
        )
        .await;
    assert!(mallory.starts_with(redirect), "{mallory}");
}

#[tokio::test]
async fn stack_jwks_has_two_keys_without_use_and_a_plain_404_for_an_unknown_project() {
    let fake = StackFake::start().await;
    let jwks = stack_jwks(&fake, "").await.ok();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        let mut fields: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "x", "y"], "{key}");
    }
    let (at, _) = Stack::new(&fake).sign_in("alice@example.com").await;
    assert_eq!(
        jwt_part(&at, 0)["kid"],
        keys[0]["kid"],
        "the first key signs"
    );

    let other = send(
        http()
            .get(fake.api("/projects/99999999-2222-3333-4444-555555555555/.well-known/jwks.json")),
    )
    .await;
    assert_eq!(other.status, 404);
    assert!(other.headers.get("x-stack-known-error").is_none());
    assert_eq!(
        other.headers["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(other.body, "Project not found");
    stack_jwks(&fake, "?include_restricted=yes")
        .await
        .known(400, "SCHEMA_ERROR");
}
