//! End-to-end checks of the provider fakes in tests/fakes (Stytch B2B, Stack Auth), driven the
//! way a client would with plain reqwest (no Tessera code involved): every documented flow and
//! every rejection the fakes implement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_testkit::fakes::{stack_fixture, stytch_fixture};
use tessera_testkit::{StackFake, StytchFake};
use url::Url;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

/// (code_verifier, code_challenge) for PKCE S256.
fn pkce() -> (String, String) {
    let verifier = format!("{:0>64}", unique());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).expect("JWT has 3 parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn json_of(resp: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

// =============================================================================================
// Stytch B2B

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

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

async fn stytch(fake: &StytchFake, api: Api<'_>, path: &str, body: Value) -> (u16, Value) {
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
    let resp = http()
        .post(url)
        .basic_auth(user, Some(pass))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, _, v) = json_of(resp).await;
    (status, v)
}

/// Asserts a Stytch error body and returns it.
#[track_caller]
fn stytch_error(got: &(u16, Value), status: u16, error_type: &str) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
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

/// The `data` of an SDK answer (checking the envelope).
#[track_caller]
fn sdk_data(got: &(u16, Value)) -> Value {
    let (s, v) = got;
    assert_eq!(*s, 200, "{v}");
    assert_eq!(v["status_code"], 200, "{v}");
    assert!(v["request_id"].as_str().is_some(), "{v}");
    let data = v["data"].clone();
    assert!(data.is_object(), "SDK answers are wrapped in data: {v}");
    assert_eq!(data["status_code"], 200, "{v}");
    data
}

#[track_caller]
fn ok(got: &(u16, Value)) -> Value {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1.clone()
}

/// send → mailbox → authenticate (with PKCE), through the backend API; returns the IST answer.
async fn stytch_discover(fake: &StytchFake, email: &str, redirect: &str) -> Value {
    let (verifier, challenge) = pkce();
    ok(&stytch(
        fake,
        Api::Backend,
        "b2b/magic_links/email/discovery/send",
        json!({
            "email_address": email,
            "discovery_redirect_url": redirect,
            "pkce_code_challenge": challenge,
        }),
    )
    .await);
    let link = fake.latest_link_to(email).await;
    let token = param(&link, "token").expect("token in the link");
    ok(&stytch(
        fake,
        Api::Backend,
        "b2b/magic_links/discovery/authenticate",
        json!({ "discovery_magic_links_token": token, "pkce_code_verifier": verifier }),
    )
    .await)
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
    let sent = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/magic_links/email/discovery/send",
        json!({
            "email_address": ALICE,
            "discovery_redirect_url": "dev.tessera:/callback",
            "pkce_code_challenge": challenge,
        }),
    )
    .await);
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
    let auth = |body: Value| {
        stytch(
            &fake,
            Api::Backend,
            "b2b/magic_links/discovery/authenticate",
            body,
        )
    };
    stytch_error(
        &auth(json!({ "discovery_magic_links_token": token })).await,
        400,
        "pkce_expected_code_verifier",
    );
    let (wrong, _) = pkce();
    stytch_error(
        &auth(json!({ "discovery_magic_links_token": token, "pkce_code_verifier": wrong })).await,
        400,
        "pkce_mismatch",
    );
    let authed = ok(&auth(json!({
        "discovery_magic_links_token": token,
        "pkce_code_verifier": verifier,
    }))
    .await);
    stytch_error(
        &auth(json!({ "discovery_magic_links_token": token, "pkce_code_verifier": verifier }))
            .await,
        401,
        "unable_to_auth_magic_link",
    );
    stytch_error(
        &auth(json!({ "discovery_magic_links_token": "never-issued" })).await,
        404,
        "magic_link_not_found",
    );
    assert_eq!(authed["email_address"], ALICE);
    let ist = authed["intermediate_session_token"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let listed = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/organizations",
        json!({ "intermediate_session_token": ist }),
    )
    .await);
    assert_eq!(org_slugs(&listed["discovered_organizations"]).len(), 3);
    assert!(listed["organization_id_hint"].is_null());

    // 4. Exchange into globex: MFA required, IST handed back unconsumed, no session.
    let mfa = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/intermediate_sessions/exchange",
        json!({ "intermediate_session_token": ist, "organization_id": "globex" }),
    )
    .await);
    assert_eq!(mfa["member_authenticated"], false);
    assert!(mfa["mfa_required"].is_object(), "{mfa}");
    assert_eq!(mfa["intermediate_session_token"], ist);
    assert_eq!(mfa["session_token"], "");
    assert_eq!(mfa["session_jwt"], "");
    assert!(mfa["member_session"].is_null());
    assert_eq!(mfa["member_id"], stytch_fixture::ALICE_GLOBEX);

    // 5. Exchange into acme (by slug): a session; the IST is now consumed.
    let exchanged = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/intermediate_sessions/exchange",
        json!({ "intermediate_session_token": ist, "organization_id": "acme" }),
    )
    .await);
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
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({ "intermediate_session_token": ist, "organization_id": "acme" }),
        )
        .await,
        404,
        "intermediate_session_not_found",
    );

    // 6. The session JWT against the JWKS (unauthenticated GET).
    let resp = http()
        .get(fake.url(&format!("/v1/b2b/sessions/jwks/{}", fake.project_id)))
        .send()
        .await
        .unwrap();
    let (status, _, jwks) = json_of(resp).await;
    assert_eq!(status, 200, "{jwks}");
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
    let again = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/sessions/authenticate",
        json!({ "session_token": session_token }),
    )
    .await);
    assert_eq!(again["session_token"], session_token);
    let jwt2 = again["session_jwt"].as_str().unwrap();
    assert_ne!(jwt2, jwt1);
    assert!(jwt_part(jwt2, 1)["iat"].as_i64().unwrap() >= iat1 + 60);
    assert_eq!(
        again["member_session"]["expires_at"], exchanged["member_session"]["expires_at"],
        "no session_duration_minutes: the session is not extended"
    );
    // … also from the (possibly expired) JWT, and session_duration_minutes extends.
    let extended = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/sessions/authenticate",
        json!({ "session_jwt": jwt1, "session_duration_minutes": 600 }),
    )
    .await);
    assert_eq!(extended["session_token"], session_token);
    assert!(
        extended["member_session"]["expires_at"].as_str().unwrap()
            > again["member_session"]["expires_at"].as_str().unwrap()
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_token": session_token, "session_jwt": jwt2 }),
        )
        .await,
        400,
        "too_many_session_arguments",
    );

    // 8. A member session lists the member's organizations only (no eligible-to-join).
    let mine = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/organizations",
        json!({ "session_token": session_token }),
    )
    .await);
    assert_eq!(
        org_slugs(&mine["discovered_organizations"]),
        [
            ("acme".into(), "active_member".into()),
            ("globex".into(), "active_member".into()),
        ]
    );

    // 9. Org switch: globex wants MFA; initech cannot be joined with a session.
    let switch = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/sessions/exchange",
        json!({ "session_token": session_token, "organization_id": stytch_fixture::ORG_GLOBEX }),
    )
    .await);
    assert_eq!(switch["member_authenticated"], false);
    assert!(switch["mfa_required"].is_object());
    assert!(
        !switch["intermediate_session_token"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(switch["session_token"], "");
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/exchange",
            json!({ "session_token": session_token, "organization_id": "initech" }),
        )
        .await,
        404,
        "member_not_found",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/exchange",
            json!({ "session_token": session_token, "organization_id": "umbrella" }),
        )
        .await,
        404,
        "organization_not_found",
    );

    // 10. Revoke → authenticate is 404 session_not_found.
    let revoked = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/sessions/revoke",
        json!({ "session_token": session_token }),
    )
    .await);
    assert_eq!(revoked["status_code"], 200);
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_token": session_token }),
        )
        .await,
        404,
        "session_not_found",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_jwt": jwt2 }),
        )
        .await,
        404,
        "session_not_found",
    );

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

    let sent = stytch(
        &fake,
        Api::SdkAnon,
        "b2b/magic_links/email/discovery/send",
        json!({
            "email_address": ALICE,
            "discovery_redirect_url": "http://127.0.0.1:53124/callback",
            "pkce_code_challenge": challenge,
        }),
    )
    .await;
    sdk_data(&sent);
    let link = fake.latest_link_to(ALICE).await;
    assert!(link.starts_with("http://127.0.0.1:53124/callback?stytch_token_type=discovery&token="));
    let token = param(&link, "token").unwrap();

    let authed = sdk_data(
        &stytch(
            &fake,
            Api::SdkAnon,
            "b2b/magic_links/discovery/authenticate",
            json!({ "discovery_magic_links_token": token, "pkce_code_verifier": verifier }),
        )
        .await,
    );
    let ist = authed["intermediate_session_token"].as_str().unwrap();
    assert_eq!(org_slugs(&authed["discovered_organizations"]).len(), 3);

    let exchanged = sdk_data(
        &stytch(
            &fake,
            Api::SdkAnon,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({
                "intermediate_session_token": ist,
                "organization_id": stytch_fixture::ORG_ACME,
                "session_duration_minutes": 60,
            }),
        )
        .await,
    );
    let session = exchanged["session_token"].as_str().unwrap().to_owned();
    assert_eq!(exchanged["member_authenticated"], true);

    // Refresh: the session token rides in the Basic header; body only session_duration_minutes.
    fake.advance_clock(30).await;
    let refreshed = sdk_data(
        &stytch(
            &fake,
            Api::Sdk(&session),
            "b2b/sessions/authenticate",
            json!({}),
        )
        .await,
    );
    assert_eq!(refreshed["session_token"], session);
    assert_ne!(refreshed["session_jwt"], exchanged["session_jwt"]);
    stytch_error(
        &stytch(
            &fake,
            Api::Sdk(&session),
            "b2b/sessions/authenticate",
            json!({ "session_token": session }),
        )
        .await,
        400,
        "bad_request",
    );

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
        let resp = http()
            .get(fake.url(path))
            .basic_auth(&fake.public_token, Some(&session))
            .send()
            .await
            .unwrap();
        let (status, _, v) = json_of(resp).await;
        let data = sdk_data(&(status, v));
        assert_eq!(data[field][want.0], want.1, "{data}");
    }

    let orgs = sdk_data(
        &stytch(
            &fake,
            Api::Sdk(&session),
            "b2b/discovery/organizations",
            json!({}),
        )
        .await,
    );
    assert_eq!(org_slugs(&orgs["discovered_organizations"]).len(), 2);

    let switch = sdk_data(
        &stytch(
            &fake,
            Api::Sdk(&session),
            "b2b/sessions/exchange",
            json!({ "organization_id": "globex" }),
        )
        .await,
    );
    assert_eq!(switch["member_authenticated"], false);
    assert!(switch["mfa_required"].is_object());

    // Revoke (no body) → the header's session is gone.
    sdk_data(&stytch(&fake, Api::Sdk(&session), "b2b/sessions/revoke", json!({})).await);
    stytch_error(
        &stytch(
            &fake,
            Api::Sdk(&session),
            "b2b/sessions/authenticate",
            json!({}),
        )
        .await,
        404,
        "session_not_found",
    );
    stytch_error(
        &stytch(&fake, Api::SdkAnon, "b2b/sessions/authenticate", json!({})).await,
        404,
        "session_not_found",
    );

    let log = fake.requests().await;
    assert!(log.iter().any(|r| r["family"] == "sdk"
        && r["path"] == "/sdk/v1/b2b/sessions/authenticate"
        && r["auth"]["password"] == "session_token"));
}

#[tokio::test]
async fn stytch_rejections() {
    let fake = StytchFake::start().await;
    let send = "b2b/magic_links/email/discovery/send";

    // Wrong credentials for each family.
    let resp = http()
        .post(fake.url(&format!("/v1/{send}")))
        .basic_auth(&fake.project_id, Some("wrong-secret"))
        .json(&json!({ "email_address": ALICE }))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 401, "unauthorized_credentials");
    let resp = http()
        .post(fake.url(&format!("/v1/{send}")))
        .json(&json!({ "email_address": ALICE }))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 401, "unauthorized_credentials");
    // The public token is not good for the backend API, nor the secret for the SDK API.
    let resp = http()
        .post(fake.url(&format!("/v1/{send}")))
        .basic_auth(&fake.public_token, Some(&fake.public_token))
        .json(&json!({ "email_address": ALICE }))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 401, "unauthorized_credentials");
    let resp = http()
        .post(fake.url(&format!("/sdk/v1/{send}")))
        .basic_auth(&fake.project_id, Some(&fake.secret))
        .json(&json!({ "email_address": ALICE }))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 401, "unauthorized_credentials");
    stytch_error(
        &stytch(
            &fake,
            Api::Sdk("not-a-session"),
            send,
            json!({ "email_address": ALICE }),
        )
        .await,
        401,
        "unauthorized_credentials",
    );

    // Unknown routes, wrong methods, SDK-only routes on the backend.
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/magic_links/email/login_or_signup",
            json!({}),
        )
        .await,
        404,
        "route_not_found",
    );
    let resp = http()
        .get(fake.url("/v1/b2b/sessions/authenticate"))
        .basic_auth(&fake.project_id, Some(&fake.secret))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 405, "method_not_allowed");
    let resp = http()
        .get(fake.url("/v1/b2b/organizations/me"))
        .basic_auth(&fake.project_id, Some(&fake.secret))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 404, "route_not_found");
    let resp = http()
        .get(fake.url("/v1/b2b/sessions/jwks/project-test-other"))
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(resp).await;
    stytch_error(&(s, v), 404, "project_not_found");

    // Bodies: unknown fields, wrong types, bad values.
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            send,
            json!({ "email_address": ALICE, "redirect_url": "dev.tessera:/callback" }),
        )
        .await,
        400,
        "bad_request",
    );
    stytch_error(
        &stytch(&fake, Api::Backend, send, json!({ "email_address": 42 })).await,
        400,
        "bad_request",
    );
    stytch_error(
        &stytch(&fake, Api::Backend, send, json!({})).await,
        400,
        "bad_request",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            send,
            json!({ "email_address": "not-an-email" }),
        )
        .await,
        400,
        "invalid_email",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            send,
            json!({ "email_address": ALICE, "pkce_code_challenge": "short" }),
        )
        .await,
        400,
        "invalid_pkce_code_challenge",
    );
    // Unregistered redirect URLs (the loopback one matches any port, nothing else).
    for redirect in [
        "dev.tessera:/elsewhere",
        "https://evil.example.com/callback",
        "http://localhost/callback",
        "http://127.0.0.1:5000/callback?x=1",
    ] {
        stytch_error(
            &stytch(
                &fake,
                Api::Backend,
                send,
                json!({ "email_address": ALICE, "discovery_redirect_url": redirect }),
            )
            .await,
            400,
            "no_match_for_provided_magic_link_url",
        );
    }
    assert!(
        fake.outbox().await.is_empty(),
        "rejected sends mail nothing"
    );

    // A link sent without PKCE refuses a verifier.
    let seen = fake.mail_count_to(BOB).await;
    assert_eq!(seen, 0);
    ok(&stytch(&fake, Api::Backend, send, json!({ "email_address": BOB })).await);
    let link = fake.next_link_to(BOB, seen).await;
    assert_eq!(fake.latest_link_to(BOB).await, link);
    assert!(
        link.starts_with("dev.tessera:/callback?"),
        "default redirect: {link}"
    );
    let token = param(&link, "token").unwrap();
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/magic_links/discovery/authenticate",
            json!({ "discovery_magic_links_token": token, "pkce_code_verifier": pkce().0 }),
        )
        .await,
        400,
        "pkce_did_not_expect_code_verifier",
    );
    let bob = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/magic_links/discovery/authenticate",
        json!({ "discovery_magic_links_token": token }),
    )
    .await);
    assert_eq!(
        org_slugs(&bob["discovered_organizations"]),
        [("acme".into(), "active_member".into())]
    );
    // bob cannot join globex or initech.
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({
                "intermediate_session_token": bob["intermediate_session_token"],
                "organization_id": "initech",
            }),
        )
        .await,
        403,
        "email_jit_provisioning_not_allowed",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({
                "intermediate_session_token": bob["intermediate_session_token"],
                "organization_id": "acme",
                "session_duration_minutes": 1,
            }),
        )
        .await,
        400,
        "invalid_session_duration_minutes",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({
                "intermediate_session_token": bob["intermediate_session_token"],
                "organization_id": "acme",
                "session_custom_claims": { "sub": "someone-else" },
            }),
        )
        .await,
        400,
        "reserved_claims_in_custom_claims",
    );
    stytch_error(
        &stytch(&fake, Api::Backend, "b2b/sessions/authenticate", json!({})).await,
        400,
        "no_session_arguments",
    );
    stytch_error(
        &stytch(&fake, Api::Backend, "b2b/sessions/revoke", json!({})).await,
        400,
        "no_session_revoke_arguments",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_jwt": "not.a.jwt" }),
        )
        .await,
        400,
        "unable_to_parse_session_jwt",
    );
}

#[tokio::test]
async fn stytch_expiries_join_by_domain_and_key_rotation() {
    let fake = StytchFake::start().await;

    // An intermediate session lives 10 minutes.
    let authed = stytch_discover(&fake, ALICE, "dev.tessera:/callback").await;
    fake.advance_clock(601).await;
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/discovery/intermediate_sessions/exchange",
            json!({
                "intermediate_session_token": authed["intermediate_session_token"],
                "organization_id": "acme",
            }),
        )
        .await,
        404,
        "intermediate_session_not_found",
    );

    // A magic link lives discovery_expiration_minutes (default 60).
    ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/magic_links/email/discovery/send",
        json!({ "email_address": ALICE, "discovery_expiration_minutes": 5 }),
    )
    .await);
    let token = param(&fake.latest_link_to(ALICE).await, "token").unwrap();
    fake.advance_clock(301).await;
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/magic_links/discovery/authenticate",
            json!({ "discovery_magic_links_token": token }),
        )
        .await,
        401,
        "unable_to_auth_magic_link",
    );

    // Joining initech by email domain creates the membership; the session then lists it.
    let authed = stytch_discover(&fake, ALICE, "http://127.0.0.1:40000/callback").await;
    let joined = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/intermediate_sessions/exchange",
        json!({
            "intermediate_session_token": authed["intermediate_session_token"],
            "organization_id": "initech",
            "session_duration_minutes": 5,
        }),
    )
    .await);
    assert_eq!(joined["member_authenticated"], true);
    assert_eq!(
        joined["organization"]["organization_id"],
        stytch_fixture::ORG_INITECH
    );
    let session = joined["session_token"].as_str().unwrap().to_owned();
    let old_jwt = joined["session_jwt"].as_str().unwrap().to_owned();
    let mine = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/discovery/organizations",
        json!({ "session_jwt": old_jwt }),
    )
    .await);
    assert_eq!(org_slugs(&mine["discovered_organizations"]).len(), 3);

    // Key rotation: both keys published, the new one signs, the old JWT still authenticates.
    let kid = fake.rotate_signing_key().await;
    let resp = http()
        .get(fake.url(&format!("/v1/b2b/sessions/jwks/{}", fake.project_id)))
        .send()
        .await
        .unwrap();
    let (_, _, jwks) = json_of(resp).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let again = ok(&stytch(
        &fake,
        Api::Backend,
        "b2b/sessions/authenticate",
        json!({ "session_jwt": old_jwt }),
    )
    .await);
    assert_eq!(
        jwt_part(again["session_jwt"].as_str().unwrap(), 0)["kid"],
        kid
    );

    // The session (5 minutes) expires with the clock: 404, JWT or token alike.
    fake.advance_clock(301).await;
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_token": session }),
        )
        .await,
        404,
        "session_not_found",
    );
    stytch_error(
        &stytch(
            &fake,
            Api::Backend,
            "b2b/sessions/authenticate",
            json!({ "session_jwt": old_jwt }),
        )
        .await,
        404,
        "session_not_found",
    );
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
    ) -> (u16, HeaderMap, Value) {
        let mut req = self.req(method, path, extra);
        if let Some(body) = body {
            req = req.json(&body);
        }
        json_of(req.send().await.unwrap()).await
    }

    async fn post(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        body: Value,
    ) -> (u16, HeaderMap, Value) {
        self.call(reqwest::Method::POST, path, extra, Some(body))
            .await
    }

    async fn get(&self, path: &str, extra: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
        self.call(reqwest::Method::GET, path, extra, None).await
    }

    async fn sign_in(&self, email: &str) -> (String, String) {
        let (s, _, v) = self
            .post(
                "/auth/password/sign-in",
                &[],
                json!({ "email": email, "password": STACK_PASSWORD }),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        (
            v["access_token"].as_str().unwrap().to_owned(),
            v["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn refresh(&self, rt: &str) -> (u16, HeaderMap, Value) {
        self.post(
            "/auth/sessions/current/refresh",
            &[("x-stack-refresh-token", rt)],
            json!({}),
        )
        .await
    }
}

/// Asserts a Stack known error: status, `x-stack-known-error` header and `{code, error, details?}`.
#[track_caller]
fn known(got: &(u16, HeaderMap, Value), status: u16, code: &str) -> Value {
    let (s, h, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(
        h.get("x-stack-known-error").and_then(|v| v.to_str().ok()),
        Some(code),
        "{v}"
    );
    assert_eq!(v["code"], code, "{v}");
    assert!(v["error"].as_str().is_some(), "{v}");
    v["details"].clone()
}

#[tokio::test]
async fn stack_password_refresh_teams_switch_and_sign_out() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);
    let (at, rt) = stack.sign_in("alice@example.com").await;

    // The access token and the JWKS.
    let (s, h, jwks) = json_of(
        http()
            .get(fake.api(&format!(
                "/projects/{}/.well-known/jwks.json",
                fake.project_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{jwks}");
    assert!(
        h.get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("max-age=3600")
    );
    let key = &jwks["keys"][0];
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
    known(
        &stack
            .post(
                "/auth/password/sign-in",
                &[],
                json!({ "email": "alice@example.com", "password": "nope" }),
            )
            .await,
        400,
        "EMAIL_PASSWORD_MISMATCH",
    );

    // Refresh: only an access token, the refresh token never rotates.
    let got = stack.refresh(&rt).await;
    assert_eq!(got.0, 200, "{}", got.2);
    let keys: Vec<&String> = got.2.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token"]);
    let at2 = got.2["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at2, 1)["refresh_token_id"], rt_id.as_str());
    assert_eq!(stack.refresh(&rt).await.0, 200, "the same RT keeps working");

    // Teams, and switching the selected team.
    let (s, _, teams) = stack
        .get("/teams?user_id=me", &[("x-stack-access-token", &at)])
        .await;
    assert_eq!(s, 200, "{teams}");
    let names: Vec<&str> = teams["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Team Acme", "Team Globex"]);
    let (s, _, me) = stack
        .get("/users/me", &[("x-stack-access-token", &at)])
        .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["id"], stack_fixture::ALICE_ID);
    assert_eq!(me["primary_email"], "alice@example.com");
    assert_eq!(me["selected_team"]["display_name"], "Team Acme");
    let (s, _, patched) = stack
        .call(
            reqwest::Method::PATCH,
            "/users/me",
            &[("x-stack-access-token", &at)],
            Some(json!({ "selected_team_id": stack_fixture::TEAM_GLOBEX })),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["selected_team_id"], stack_fixture::TEAM_GLOBEX);
    assert_eq!(
        jwt_part(&at, 1)["selected_team_id"],
        stack_fixture::TEAM_ACME,
        "old token unchanged"
    );
    let refreshed = stack.refresh(&rt).await.2;
    assert_eq!(
        jwt_part(refreshed["access_token"].as_str().unwrap(), 1)["selected_team_id"],
        stack_fixture::TEAM_GLOBEX
    );

    // bob is not in Team Globex; garbage and unknown fields are schema errors.
    let (bob_at, _) = stack.sign_in("bob@example.com").await;
    let patch = |at: String, body: Value| {
        let stack = &stack;
        async move {
            stack
                .call(
                    reqwest::Method::PATCH,
                    "/users/me",
                    &[("x-stack-access-token", &at)],
                    Some(body),
                )
                .await
        }
    };
    let details = known(
        &patch(
            bob_at.clone(),
            json!({ "selected_team_id": stack_fixture::TEAM_GLOBEX }),
        )
        .await,
        404,
        "TEAM_MEMBERSHIP_NOT_FOUND",
    );
    assert_eq!(details["team_id"], stack_fixture::TEAM_GLOBEX);
    known(
        &patch(bob_at.clone(), json!({ "selected_team_id": "team-globex" })).await,
        400,
        "SCHEMA_ERROR",
    );
    known(
        &patch(bob_at.clone(), json!({ "selected_team": "x" })).await,
        400,
        "SCHEMA_ERROR",
    );

    // The project.
    let (s, _, project) = stack.get("/projects/current", &[]).await;
    assert_eq!(s, 200, "{project}");
    assert_eq!(project["id"], fake.project_id);
    assert!(project["config"]["oauth_providers"].is_array());

    // An expired access token: 401 ACCESS_TOKEN_EXPIRED; a refresh fixes it.
    fake.advance_clock(601).await;
    let details = known(
        &stack
            .get("/users/me", &[("x-stack-access-token", &at)])
            .await,
        401,
        "ACCESS_TOKEN_EXPIRED",
    );
    assert!(details["expired_at_millis"].is_number());
    // … or as 200 + x-stack-actual-status when the client asks for it.
    let (s, h, v) = stack
        .get(
            "/users/me",
            &[
                ("x-stack-access-token", &at),
                ("x-stack-override-error-status", "true"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-stack-actual-status"], "401");
    assert_eq!(h["x-stack-known-error"], "ACCESS_TOKEN_EXPIRED");
    assert_eq!(v["code"], "ACCESS_TOKEN_EXPIRED");
    let fresh = stack.refresh(&rt).await.2["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        stack
            .get("/users/me", &[("x-stack-access-token", &fresh)])
            .await
            .0,
        200
    );

    // Sign out: deletes the refresh token named by the access token.
    let (s, _, v) = stack
        .call(
            reqwest::Method::DELETE,
            "/auth/sessions/current",
            &[("x-stack-access-token", &fresh)],
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({ "success": true }));
    known(
        &stack.refresh(&rt).await,
        401,
        "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED",
    );
    known(
        &stack.refresh("never-issued").await,
        401,
        "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED",
    );

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
    let send = |headers: Vec<(&'static str, String)>| {
        let mut req = http().post(&sign_in).json(&body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { json_of(req.send().await.unwrap()).await }
    };
    let all = stack_headers(&fake);
    let without = |name: &str| {
        all.iter()
            .filter(|(k, _)| *k != name)
            .cloned()
            .collect::<Vec<_>>()
    };

    known(&send(vec![]).await, 400, "ACCESS_TYPE_REQUIRED");
    known(
        &send(without("x-stack-access-type")).await,
        400,
        "PROJECT_KEY_WITHOUT_ACCESS_TYPE",
    );
    known(
        &send(without("x-stack-project-id")).await,
        400,
        "ACCESS_TYPE_WITHOUT_PROJECT_ID",
    );
    known(
        &send(without("x-stack-publishable-client-key")).await,
        401,
        "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT",
    );
    let mut wrong_key = without("x-stack-publishable-client-key");
    wrong_key.push(("x-stack-publishable-client-key", "pck_wrong".to_owned()));
    known(
        &send(wrong_key).await,
        401,
        "INVALID_PUBLISHABLE_CLIENT_KEY",
    );
    let mut wrong_type = without("x-stack-access-type");
    wrong_type.push(("x-stack-access-type", "browser".to_owned()));
    known(&send(wrong_type).await, 400, "INVALID_ACCESS_TYPE");
    let mut server = without("x-stack-access-type");
    server.push(("x-stack-access-type", "server".to_owned()));
    known(&send(server).await, 401, "INVALID_SECRET_SERVER_KEY");
    let mut branch = all.clone();
    branch.push(("x-stack-branch-id", "dev".to_owned()));
    known(&send(branch).await, 400, "BRANCH_DOES_NOT_EXIST");

    // Unknown body fields, missing fields, garbage JSON, a body on refresh.
    known(
        &stack
            .post(
                "/auth/password/sign-in",
                &[],
                json!({ "email": "alice@example.com", "password": "demo", "remember": true }),
            )
            .await,
        400,
        "SCHEMA_ERROR",
    );
    known(
        &stack
            .post(
                "/auth/password/sign-in",
                &[],
                json!({ "email": "alice@example.com" }),
            )
            .await,
        400,
        "SCHEMA_ERROR",
    );
    let garbage = stack
        .req(reqwest::Method::POST, "/auth/password/sign-in", &[])
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    known(&json_of(garbage).await, 400, "BODY_PARSING_ERROR");
    let (_, rt) = stack.sign_in("bob@example.com").await;
    known(
        &stack
            .post(
                "/auth/sessions/current/refresh",
                &[("x-stack-refresh-token", &rt)],
                json!({ "refresh_token": rt }),
            )
            .await,
        400,
        "SCHEMA_ERROR",
    );
    known(
        &stack
            .post("/auth/sessions/current/refresh", &[], json!({}))
            .await,
        400,
        "SCHEMA_ERROR",
    );
    known(
        &stack.get("/users/me", &[]).await,
        400,
        "CANNOT_GET_OWN_USER_WITHOUT_USER",
    );
    known(
        &stack
            .get("/users/me", &[("x-stack-access-token", "garbage")])
            .await,
        401,
        "UNPARSABLE_ACCESS_TOKEN",
    );
    known(
        &stack.get("/teams?user_id=me&limit=5", &[]).await,
        400,
        "SCHEMA_ERROR",
    );

    // Unknown paths: Stack's own plain-text 404 (no known error).
    let (s, h, v) = stack.get("/auth/oidc/token", &[]).await;
    assert_eq!(s, 404);
    assert!(h.get("x-stack-known-error").is_none());
    assert!(
        v.as_str()
            .unwrap()
            .contains("this page does not exist in Stack Auth's API"),
        "{v}"
    );
    let (s, _, _) = json_of(http().get(fake.url("/v1/users/me")).send().await.unwrap()).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn stack_email_code_through_the_outbox() {
    let fake = StackFake::start().await;
    let stack = Stack::new(&fake);

    let (s, _, sent) = stack
        .post(
            "/auth/otp/send-sign-in-code",
            &[],
            json!({ "email": "bob@example.com", "callback_url": "http://127.0.0.1:8765/magic-link" }),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
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
    let typed = format!("{otp}{nonce}");
    let (s, _, signed) = stack
        .post("/auth/otp/sign-in", &[], json!({ "code": typed }))
        .await;
    assert_eq!(s, 200, "{signed}");
    assert_eq!(signed["user_id"], stack_fixture::BOB_ID);
    assert_eq!(signed["is_new_user"], false);
    assert!(signed["refresh_token"].is_string());
    known(
        &stack
            .post("/auth/otp/sign-in", &[], json!({ "code": code }))
            .await,
        409,
        "VERIFICATION_CODE_ALREADY_USED",
    );
    known(
        &stack
            .post("/auth/otp/sign-in", &[], json!({ "code": "x".repeat(45) }))
            .await,
        404,
        "VERIFICATION_CODE_NOT_FOUND",
    );
    known(
        &stack
            .post("/auth/otp/sign-in", &[], json!({ "code": otp }))
            .await,
        400,
        "SCHEMA_ERROR",
    );
    known(
        &stack
            .post(
                "/auth/otp/send-sign-in-code",
                &[],
                json!({ "email": "bob@example.com", "callback_url": "dev.tessera:/callback" }),
            )
            .await,
        400,
        "REDIRECT_URL_NOT_WHITELISTED",
    );

    // Waiting for the next mail, not the latest one already there.
    let seen = fake.mail_count_to("bob@example.com").await;
    assert_eq!(seen, 1);
    stack
        .post(
            "/auth/otp/send-sign-in-code",
            &[],
            json!({ "email": "bob@example.com", "callback_url": "https://app.example.com/magic" }),
        )
        .await;
    let second = fake.next_code_to("bob@example.com", seen).await;
    assert_ne!(second, code);
    assert_eq!(fake.latest_code_to("bob@example.com").await, second);

    // A new address signs up.
    stack
        .post(
            "/auth/otp/send-sign-in-code",
            &[],
            json!({ "email": "dave@example.com", "callback_url": "http://localhost:3000/x" }),
        )
        .await;
    let code = fake.latest_code_to("dave@example.com").await;
    let (_, _, dave) = stack
        .post("/auth/otp/sign-in", &[], json!({ "code": code }))
        .await;
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
        async move { json_of(http().get(url).send().await.unwrap()).await }
    };

    fake.set_oauth_user("bob@example.com").await;
    let (s, h, v) = authorize("github", &fake.publishable_key, redirect).await;
    assert_eq!(s, 307, "{v}");
    let location = h["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(redirect), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("state-123"));
    let code = param(&location, "code").unwrap();

    let token = |form: Vec<(&'static str, String)>| {
        let req = http().post(fake.api("/auth/oauth/token")).form(&form);
        async move { json_of(req.send().await.unwrap()).await }
    };
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
    known(
        &token(base(&pkce().0, redirect)).await,
        400,
        "INVALID_AUTHORIZATION_CODE",
    );
    let (s, _, v) = token(base(&verifier, "http://127.0.0.1:47002/callback")).await;
    assert_eq!(s, 400, "{v}");
    let mut wrong_secret = base(&verifier, redirect);
    wrong_secret[5].1 = "pck_wrong".to_owned();
    known(
        &token(wrong_secret).await,
        400,
        "INVALID_OAUTH_CLIENT_ID_OR_SECRET",
    );
    let (s, _, tokens) = token(base(&verifier, redirect)).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["is_new_user"], false);
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["sub"],
        stack_fixture::BOB_ID
    );
    known(
        &token(base(&verifier, redirect)).await,
        400,
        "INVALID_AUTHORIZATION_CODE",
    );

    // The refresh grant: same refresh token back.
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, _, v) = token(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", rt.clone()),
        ("client_id", fake.project_id.clone()),
        ("client_secret", fake.publishable_key.clone()),
    ])
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refresh_token"], rt.as_str());
    assert!(v["access_token"].is_string());
    // JSON is not accepted at the token endpoint.
    let (s, _, v) = json_of(
        http()
            .post(fake.api("/auth/oauth/token"))
            .json(&json!({ "grant_type": "refresh_token", "refresh_token": rt }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(
        stack.refresh(&rt).await.0,
        200,
        "OAuth refresh tokens refresh the usual way too"
    );

    // Rejected authorizations.
    known(
        &authorize("github", &fake.publishable_key, "dev.tessera:/callback").await,
        400,
        "REDIRECT_URL_NOT_WHITELISTED",
    );
    known(
        &authorize("github", "pck_wrong", redirect).await,
        401,
        "INVALID_PUBLISHABLE_CLIENT_KEY",
    );
    known(
        &authorize("github", "__stack_public_client__", redirect).await,
        401,
        "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT",
    );
    known(
        &authorize("myspace", &fake.publishable_key, redirect).await,
        400,
        "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED",
    );
    let (s, h, _) = authorize(
        "google",
        &fake.publishable_key,
        "stack-auth-mobile-oauth-url://success",
    )
    .await;
    assert_eq!(s, 307);
    assert!(
        h["location"]
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
    let details = known(
        &stack
            .post(
                "/auth/password/sign-in",
                &[],
                json!({ "email": "carol@example.com", "password": STACK_PASSWORD }),
            )
            .await,
        400,
        "MULTI_FACTOR_AUTHENTICATION_REQUIRED",
    );
    let attempt = details["attempt_code"].as_str().unwrap().to_owned();
    assert_eq!(attempt.len(), 45);
    known(
        &stack
            .post(
                "/auth/mfa/sign-in",
                &[],
                json!({ "type": "totp", "totp": "000000", "code": attempt }),
            )
            .await,
        400,
        "INVALID_TOTP_CODE",
    );
    let totp = fake.totp("carol@example.com").await;
    let (s, _, v) = stack
        .post(
            "/auth/mfa/sign-in",
            &[],
            json!({ "type": "totp", "totp": totp, "code": attempt }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user_id"], stack_fixture::CAROL_ID);
    assert_eq!(
        jwt_part(v["access_token"].as_str().unwrap(), 1)["requires_totp_mfa"],
        true
    );

    // Anonymous users: their own issuer/audience; refused unless the client allows them.
    let (s, _, anon) = stack.post("/auth/anonymous/sign-up", &[], json!({})).await;
    assert_eq!(s, 200, "{anon}");
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
    known(
        &stack
            .get("/users/me", &[("x-stack-access-token", at)])
            .await,
        401,
        "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED",
    );
    let (s, _, me) = stack
        .get(
            "/users/me",
            &[
                ("x-stack-access-token", at),
                ("x-stack-allow-anonymous-user", "true"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["is_anonymous"], true);
    let (_, _, jwks) = json_of(
        http()
            .get(fake.api(&format!(
                "/projects/{}/.well-known/jwks.json?include_anonymous=true",
                fake.project_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    // The CLI login: waiting → approved (201 + refresh token) → used.
    let (s, _, cli) = stack.post("/auth/cli", &[], json!({})).await;
    assert_eq!(s, 200, "{cli}");
    let polling = cli["polling_code"].as_str().unwrap().to_owned();
    let poll = || stack.post("/auth/cli/poll", &[], json!({ "polling_code": polling }));
    assert_eq!(poll().await.2["status"], "waiting");
    fake.approve_cli(cli["login_code"].as_str().unwrap(), "alice@example.com")
        .await;
    let (s, _, done) = poll().await;
    assert_eq!(s, 201, "{done}");
    assert_eq!(done["status"], "success");
    assert_eq!(
        stack
            .refresh(done["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    assert_eq!(poll().await.2["status"], "used");
}
