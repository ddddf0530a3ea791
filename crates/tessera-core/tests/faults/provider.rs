//! Provider faults at every endpoint Tessera calls — discovery, JWKS, token, userinfo,
//! introspection, revocation — with the HTTP timeouts shortened to one second (the defaults,
//! 10 s to connect and 30 s in all, are checked to stay within 30 s).

use std::time::{Duration, Instant};

use tessera_core::AccountStatus;
use tessera_core::http::HttpConfig;
use tessera_testkit::Answer;
use tessera_testkit::scripted::Refresh;

use crate::adversary::{PROVIDER, Rig, outcome, rig_with, short_http};

const TEN_MB: usize = 10 * 1024 * 1024;

/// A fault, the error it must give, and a part of that error's message.
type Fault = (&'static str, fn() -> Answer, &'static str, &'static str);

#[rustfmt::skip]
const FAULTS: &[Fault] = &[
    (
        "a stall",
        || Answer::Stall,
        "http_timeout",
        "did not answer in time",
    ),
    (
        "a slow drip",
        || Answer::Drip,
        "http_timeout",
        "did not answer in time",
    ),
    (
        "a connection reset",
        || Answer::Reset,
        "network",
        "cannot reach",
    ),
    (
        "a connection closed unanswered",
        || Answer::Close,
        "network",
        "cannot reach",
    ),
    ("a 503 page", || Answer::html(503), "http_status", "503"),
    (
        "an HTML error page",
        || Answer::html(502),
        "http_status",
        "502",
    ),
    (
        "a 500 with an OAuth error",
        || Answer::json(500, r#"{"error":"server_error"}"#),
        "provider_error",
        "server_error",
    ),
    (
        "10 MB with its length",
        || Answer::huge(TEN_MB),
        "response_too_large",
        "larger than 1 MiB",
    ),
    (
        "10 MB chunked",
        || Answer::Chunked(TEN_MB),
        "response_too_large",
        "larger than 1 MiB",
    ),
];

/// The longest a faulty request may keep a caller waiting with one-second timeouts.
const BOUND: Duration = Duration::from_secs(4);

#[test]
fn the_default_timeouts_bound_every_request_within_30_seconds() {
    let d = HttpConfig::default();
    assert!(d.connect_timeout <= d.total_timeout);
    assert!(d.total_timeout <= Duration::from_secs(30));
}

/// Runs every fault at `path` through `call`; `wrapped` names the code the caller sees
/// instead of the fault's own (a key set that cannot be loaded fails the signature check).
/// After each: the account is still active, its stored refresh token is the one the
/// provider honours, and no secret reached a file.
async fn faults_at(
    rig: &Rig,
    path: &str,
    wrapped: Option<&str>,
    call: impl AsyncFn(&Rig) -> Result<tessera_core::Error, String>,
) {
    let id = rig.tessera.accounts().unwrap()[0].id.clone();
    let mut failures = Vec::new();
    for &(name, fault, code, says) in FAULTS {
        rig.idp.always(path, fault());
        let began = Instant::now();
        let got = call(rig).await;
        let waited = began.elapsed();
        rig.idp.normal(path);
        let code = wrapped.unwrap_or(code);
        match got {
            Ok(e) if e.code() == code && e.to_string().contains(says) => {}
            Ok(e) => failures.push(format!(
                "{name}: expected [{code}] \"{says}\", got [{}] {e}",
                e.code()
            )),
            Err(how) => failures.push(format!("{name}: expected [{code}], but it {how}")),
        }
        if waited > BOUND {
            failures.push(format!("{name}: waited {waited:?}"));
        }
        match rig.tessera.account(&id) {
            Ok(a) if a.status == AccountStatus::Active => {}
            Ok(a) => failures.push(format!("{name}: the account is now {:?}", a.status)),
            Err(e) => failures.push(format!("{name}: the account is gone: {e}")),
        }
        let rt = rig.refresh_token(&id);
        if !rig.idp.refresh_token_alive(&rt) {
            failures.push(format!(
                "{name}: the stored refresh token is no longer honoured"
            ));
        }
    }
    let leaked = rig.leaked();
    assert!(leaked.is_empty(), "{path}: secrets in files: {leaked:?}");
    assert!(
        failures.is_empty(),
        "{path}: {} of {} faults did not hold:\n  {}",
        failures.len(),
        FAULTS.len(),
        failures.join("\n  ")
    );
    // And the account still works once the provider does.
    rig.tessera.access_token(&id, 0, true).await.unwrap();
}

async fn signed_in(refresh: Refresh) -> Rig {
    let rig = rig_with(refresh, short_http()).await;
    rig.sign_in("alice").await;
    rig
}

async fn refresh(rig: &Rig) -> Result<tessera_core::Error, String> {
    let t = rig.tessera.clone();
    outcome(async move { t.refresh("alice").await }).await
}

#[tokio::test]
async fn discovery_faults_during_a_refresh_lose_nothing() {
    let rig = signed_in(Refresh::Rotating).await;
    faults_at(
        &rig,
        "/.well-known/openid-configuration",
        None,
        async |rig| {
            // A day later the cached discovery document is stale: the refresh fetches it again.
            let day = 24 * 3600 + 1;
            rig.clock.advance(day);
            let got = refresh(rig).await;
            rig.clock.advance(-day);
            got
        },
    )
    .await;
}

#[tokio::test]
async fn discovery_faults_when_adding_a_provider_register_nothing() {
    let rig = signed_in(Refresh::Plain).await;
    faults_at(
        &rig,
        "/.well-known/openid-configuration",
        None,
        async |rig| {
            let t = rig.tessera.clone();
            let config = tessera_core::ProviderConfig::new("q", &rig.idp.issuer, "tessera-public");
            outcome(async move { t.add_provider(config, None).await }).await
        },
    )
    .await;
    assert_eq!(rig.tessera.providers().unwrap().len(), 1);
}

/// With rotating refresh tokens, the refresh answer's new refresh token is persisted before
/// the key set is fetched: a key-set fault loses neither it nor the account.
#[tokio::test]
async fn key_set_faults_during_a_refresh_lose_nothing() {
    let rig = signed_in(Refresh::Rotating).await;
    faults_at(&rig, "/jwks", Some("token_rejected"), async |rig| {
        let t = rig.reopen_without_key_sets();
        outcome(async move { t.refresh("alice").await }).await
    })
    .await;
}

#[tokio::test]
async fn token_endpoint_faults_during_a_refresh_lose_nothing() {
    let rig = signed_in(Refresh::Rotating).await;
    faults_at(&rig, "/token", None, refresh).await;
}

#[tokio::test]
async fn token_endpoint_faults_during_a_sign_in_store_nothing() {
    let rig = signed_in(Refresh::Plain).await;
    faults_at(&rig, "/token", None, async |rig| {
        let start = rig
            .tessera
            .start_sign_in(PROVIDER, tessera_core::flow::DEEP_LINK_REDIRECT, &[])
            .await
            .unwrap();
        let callback = rig.idp.authorize(&start.authorization_url, "bob");
        let t = rig.tessera.clone();
        outcome(async move { t.complete_sign_in(&callback).await }).await
    })
    .await;
    assert_eq!(
        rig.tessera.accounts().unwrap().len(),
        1,
        "bob was not stored"
    );
}

#[tokio::test]
async fn userinfo_faults_lose_nothing() {
    let rig = signed_in(Refresh::Plain).await;
    faults_at(&rig, "/me", None, async |rig| {
        let t = rig.tessera.clone();
        outcome(async move { t.userinfo("alice").await }).await
    })
    .await;
}

#[tokio::test]
async fn introspection_faults_lose_nothing() {
    let rig = signed_in(Refresh::Plain).await;
    faults_at(&rig, "/introspect", None, async |rig| {
        let t = rig.tessera.clone();
        outcome(async move { t.introspect("alice").await }).await
    })
    .await;
}

/// A sign-out whose revocation fails removes nothing: the person can try again.
#[tokio::test]
async fn revocation_faults_keep_the_account() {
    let rig = signed_in(Refresh::Plain).await;
    faults_at(&rig, "/revoke", None, async |rig| {
        let t = rig.tessera.clone();
        outcome(async move { t.sign_out("alice", true).await }).await
    })
    .await;
    rig.tessera.sign_out("alice", true).await.unwrap();
    assert!(rig.keychain.contents().is_empty());
}
