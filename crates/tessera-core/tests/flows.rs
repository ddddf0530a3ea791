//! The core against the real OpenID provider of `tests/idp`: sign-in by deep link, loopback
//! and device flow; refresh with and without rotation; hostile answers; forged tokens;
//! sign-out. Secrets go to an in-memory store here (so a test can lock it); the command-line
//! tests use the real keychain.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::{HttpClient, HttpConfig};
use tessera_core::jwt::{CheckStatus, Expectations, JwksCache, TokenKind};
use tessera_core::vault::{MemoryStore, WINDOWS_ENTRY_LIMIT};
use tessera_core::{AccountStatus, ClientAuth, Options, ProviderConfig, Tessera};
use tessera_testkit::{Browser, IdpOptions, Profile, client_pkjwt_pem, signing_key_pem};

mod common;
use common::{Env, env, env_on, env_with, walk};

#[tokio::test]
async fn deep_link_sign_in_verifies_and_stores_secrets_only_in_the_store() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    assert_eq!(account.email.as_deref(), Some("alice@example.com"));
    assert_eq!(account.orgs, ["acme", "globex"]);
    assert_eq!(account.status, AccountStatus::Active);

    let report = env
        .tessera
        .claims(&account.id, TokenKind::IdToken)
        .await
        .unwrap();
    assert!(report.verified, "{:?}", report.checks);
    for name in ["signature", "iss", "aud", "exp", "iat", "nonce"] {
        let check = report.checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(check.status, CheckStatus::Pass, "{name}: {}", check.detail);
    }
    let exp = report.claims.iter().find(|c| c.name == "exp").unwrap();
    assert!(exp.rendered.as_ref().unwrap().contains("UTC"));

    let stored = env.stored(&account.id).unwrap();
    let state = String::from_utf8(env.state_file()).unwrap();
    for secret in ["refresh_token", "access_token", "id_token"] {
        let value = stored[secret].as_str().unwrap();
        assert!(
            !state.contains(value),
            "{secret} must not be in the state file"
        );
    }
    let cached: Vec<_> = walk(env.dir.path());
    for file in cached {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains(stored["refresh_token"].as_str().unwrap()),
            "{}",
            file.display()
        );
    }
}

#[tokio::test]
async fn wrong_replayed_expired_and_denied_callbacks_change_nothing() {
    let env = env(Profile::Plain).await;
    let before = env.state_file();

    let callback = env.callback("local", "alice").await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), if k == "state" { "forged" } else { v.as_str() })),
    );
    let err = env
        .tessera
        .complete_sign_in(url.as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_state");

    let tampered = callback.replace("iss=", "iss=http%3A%2F%2Fevil.example&x=");
    assert_eq!(env.refused(&tampered).await, "issuer_mismatch");
    assert_eq!(env.state_file(), before, "failed callbacks store nothing");
    assert_eq!(env.refused(&callback).await, "state_replayed");

    let callback = env.callback("local", "alice").await;
    let wrong_place = callback.replace("dev.tessera:/callback", "http://127.0.0.1:9/callback");
    assert_eq!(env.refused(&wrong_place).await, "malformed_callback");

    let callback = env.callback("local", "alice").await;
    env.clock.advance(601);
    assert_eq!(env.refused(&callback).await, "flow_expired");
    env.clock.advance(-601);

    let start = env
        .tessera
        .start_sign_in("local", DEEP_LINK_REDIRECT, &[])
        .await
        .unwrap();
    let denied = env.browser.deny(&start.authorization_url).await;
    let err = env.tessera.complete_sign_in(&denied).await.unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("authorization_denied", Some("access_denied"))
    );

    for garbage in [
        "",
        "dev.tessera:/callback",
        "dev.tessera:/callback?code=x&state=a&state=b",
        "%%%",
    ] {
        assert_eq!(env.refused(garbage).await, "malformed_callback");
    }
    assert_eq!(env.state_file(), before);
    assert!(env.store.is_empty());
}

#[tokio::test]
async fn loopback_sign_in_for_confidential_clients() {
    let env = env(Profile::Plain).await;
    env.add(
        "basic",
        "tessera-basic",
        ClientAuth::ClientSecretBasic,
        Some("basic-secret"),
    )
    .await;
    env.add(
        "post",
        "tessera-post",
        ClientAuth::ClientSecretPost,
        Some("post-secret"),
    )
    .await;
    env.add(
        "pkjwt",
        "tessera-pkjwt",
        ClientAuth::PrivateKeyJwt,
        Some(&client_pkjwt_pem()),
    )
    .await;
    for (provider, user) in [("basic", "alice"), ("post", "bob"), ("pkjwt", "alice")] {
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let browser = Browser::new();
        let player = tokio::spawn(async move {
            let url = rx.await.unwrap();
            let callback = browser.login(&url, user).await;
            let (status, page) = browser.visit(&callback).await;
            assert_eq!(status, 200);
            assert!(page.contains("return to Tessera"), "{page}");
        });
        let account = env
            .tessera
            .sign_in_with_loopback(
                provider,
                &[],
                |start| tx.send(start.authorization_url.clone()).unwrap(),
                Duration::from_secs(60),
                std::future::pending(),
            )
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        player.await.unwrap();
        assert_eq!(account.provider, provider);
        let refreshed = env
            .tessera
            .refresh(&account.id)
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert!(!refreshed.rotated, "plain profile never rotates");
        let out = env
            .tessera
            .sign_out(&account.id, true)
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert!(
            out.revoked,
            "{provider} revokes with its own client authentication"
        );
    }
}

#[tokio::test]
async fn junk_on_the_loopback_port_does_not_end_the_sign_in() {
    let env = env(Profile::Plain).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let browser = Browser::new();
    let player = tokio::spawn(async move {
        let url = rx.await.unwrap();
        let redirect = tessera_core::flow::query_param(&url, "redirect_uri").unwrap();
        for junk in [
            "?state=zzz&code=forged",
            "?code=forged",
            "",
            "?error=access_denied",
        ] {
            let (status, _) = browser.visit(&format!("{redirect}{junk}")).await;
            assert_eq!(status, 400, "{junk}");
        }
        let callback = browser.login(&url, "alice").await;
        let (status, page) = browser.visit(&callback).await;
        assert_eq!(status, 200, "{page}");
    });
    let account = env
        .tessera
        .sign_in_with_loopback(
            "local",
            &[],
            |start| tx.send(start.authorization_url.clone()).unwrap(),
            Duration::from_secs(60),
            std::future::pending(),
        )
        .await
        .unwrap();
    player.await.unwrap();
    assert_eq!(account.subject, "alice");
}

#[tokio::test]
async fn wrong_client_secret_is_a_provider_error_naming_invalid_client() {
    let env = env(Profile::Plain).await;
    env.add(
        "basic",
        "tessera-basic",
        ClientAuth::ClientSecretBasic,
        Some("wrong"),
    )
    .await;
    let callback = env.callback("basic", "alice").await;
    let err = env.tessera.complete_sign_in(&callback).await.unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("provider_error", Some("invalid_client"))
    );
    assert!(env.tessera.accounts().unwrap().is_empty());
}

#[tokio::test]
async fn loopback_wait_can_be_cancelled_and_times_out() {
    let env = env(Profile::Plain).await;
    let mut flow = None;
    let err = env
        .tessera
        .sign_in_with_loopback(
            "local",
            &[],
            |s| flow = Some(s.flow_id.clone()),
            Duration::from_secs(60),
            async {},
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    assert!(!env.tessera.is_sign_in_pending(&flow.unwrap()));
    let err = env
        .tessera
        .sign_in_with_loopback(
            "local",
            &[],
            |_| {},
            Duration::from_millis(200),
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "timeout");
}

#[tokio::test]
async fn device_flow_signs_in() {
    let env = env(Profile::Plain).await;
    let device = env.tessera.start_device_sign_in("local").await.unwrap();
    assert_eq!(
        device.authorization.interval,
        Duration::from_secs(5),
        "RFC 8628 default interval"
    );
    let (uri, code) = (
        device.authorization.verification_uri.clone(),
        device.authorization.user_code.clone(),
    );
    let approve =
        tokio::spawn(async move { Browser::new().approve_device(&uri, &code, "bob").await });
    let account = env
        .tessera
        .finish_device_sign_in(&device, std::future::pending())
        .await
        .unwrap();
    approve.await.unwrap();
    assert_eq!(account.email.as_deref(), Some("bob@example.com"));
    assert!(env.stored(&account.id).unwrap()["refresh_token"].is_string());
}

#[tokio::test]
async fn refresh_rotates_persists_and_reports_changes() {
    let env = env(Profile::Rotating).await;
    let account = env.sign_in("alice").await;
    let first = env.refresh_token(&account.id);
    env.clock.advance(30);
    let outcome = env.tessera.refresh(&account.id).await.unwrap();
    assert!(outcome.rotated);
    assert!(
        outcome.expires_at > outcome.previous_expires_at,
        "{outcome:?}"
    );
    let second = env.refresh_token(&account.id);
    assert_ne!(
        first, second,
        "the rotated refresh token is what the keychain holds"
    );

    let token = env
        .tessera
        .access_token(&account.id, 0, false)
        .await
        .unwrap();
    assert!(
        !token.refreshed,
        "a valid token is handed out without a refresh"
    );
    let token = env
        .tessera
        .access_token(&account.id, 7200, false)
        .await
        .unwrap();
    assert!(token.refreshed, "--min-valid beyond the lifetime refreshes");

    let mut concurrent = Vec::new();
    for _ in 0..5 {
        let t = env.tessera.clone();
        let id = account.id.clone();
        concurrent.push(tokio::spawn(
            async move { t.access_token(&id, 0, true).await },
        ));
    }
    for c in concurrent {
        c.await.unwrap().unwrap();
    }
    let events = env.idp.events().await.to_string();
    assert!(
        !events.contains("grant.revoked"),
        "no refresh token was reused: {events}"
    );
    env.tessera.refresh(&account.id).await.unwrap();
}

#[tokio::test]
async fn a_keychain_with_windows_sized_entries_holds_whole_token_sets() {
    let store = MemoryStore::with_limit(WINDOWS_ENTRY_LIMIT);
    let env = env_on(
        store.clone(),
        IdpOptions {
            profile: Profile::Rotating,
            ..Default::default()
        },
        HttpConfig::default(),
    )
    .await;
    let account = sign_in_for_a_resource(&env).await;
    assert!(
        store.len() > 1,
        "a JWT access token and an ID token do not fit one entry: {:?}",
        store.entry_sizes()
    );
    env.clock.advance(30);
    assert!(env.tessera.refresh(&account.id).await.unwrap().rotated);
    let token = env
        .tessera
        .access_token(&account.id, 0, false)
        .await
        .unwrap();
    assert!(!token.refreshed);
    env.tessera.sign_out(&account.id, true).await.unwrap();
    assert!(store.is_empty(), "{:?}", store.entry_sizes());
}

#[tokio::test]
async fn invalid_grant_marks_needs_sign_in_and_keeps_everything() {
    let env = env(Profile::Rotating).await;
    let account = env.sign_in("alice").await;
    let rt = env.refresh_token(&account.id);
    let (status, _) = env.refresh_at_idp(&rt).await;
    assert_eq!(status, 200);
    let kept = env.stored(&account.id);
    let err = env.tessera.refresh(&account.id).await.unwrap_err();
    assert_eq!(err.code(), "needs_sign_in");
    assert_eq!(
        env.stored(&account.id),
        kept,
        "the keychain entry is untouched"
    );
    let now = env.tessera.account(&account.id).unwrap();
    assert_eq!(now.status, AccountStatus::NeedsSignIn);
    assert_eq!(
        (now.email, now.orgs),
        (account.email.clone(), account.orgs.clone())
    );
    assert_eq!(
        env.tessera
            .access_token(&account.id, 0, false)
            .await
            .unwrap_err()
            .code(),
        "needs_sign_in"
    );

    let again = env.sign_in("alice").await;
    assert_eq!(
        again.id, account.id,
        "signing in again revives the same account"
    );
    assert_eq!(again.status, AccountStatus::Active);
}

#[tokio::test]
async fn hostile_token_endpoint_answers_change_nothing() {
    let env = env_with(
        IdpOptions::default(),
        HttpConfig {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(3),
        },
    )
    .await;
    let account = env.sign_in("alice").await;
    let (state, stored) = (env.state_file(), env.stored(&account.id));
    for (kind, code) in [
        ("html", "http_status"),
        ("truncated", "malformed_response"),
        ("huge", "response_too_large"),
        ("wrong_content_type", "unexpected_content_type"),
        ("redirect", "http_status"),
        ("status500_json", "provider_error"),
        ("slow", "http_timeout"),
    ] {
        env.idp.sabotage("/token", kind).await;
        let err = env.tessera.refresh(&account.id).await.unwrap_err();
        assert_eq!(err.code(), code, "{kind}: {err}");
        assert!(
            !err.to_string()
                .contains(stored.as_ref().unwrap()["refresh_token"].as_str().unwrap())
        );
        assert_eq!(env.state_file(), state, "{kind}");
        assert_eq!(env.stored(&account.id), stored, "{kind}");
    }
    env.tessera.refresh(&account.id).await.unwrap();
}

#[tokio::test]
async fn lifetimes_near_the_end_of_time_saturate() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    env.idp.sabotage("/token", "huge_expires_in").await;
    let outcome = env.tessera.refresh(&account.id).await.unwrap();
    assert_eq!(
        outcome.expires_at,
        Some(u64::MAX),
        "now + expires_in saturates"
    );
    let token = env
        .tessera
        .access_token(&account.id, u64::MAX, false)
        .await
        .unwrap();
    assert!(
        token.refreshed,
        "no token is valid for u64::MAX more seconds (now + min_valid saturates)"
    );
}

#[tokio::test]
async fn locked_keychain_and_dead_network_are_clear_errors() {
    let env = env(Profile::Plain).await;
    let callback = env.callback("local", "alice").await;
    env.store.set_locked(true);
    assert_eq!(env.refused(&callback).await, "keychain");
    env.store.set_locked(false);
    assert!(
        env.tessera.accounts().unwrap().is_empty(),
        "no half-written account"
    );
    assert!(env.store.is_empty());

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = env
        .tessera
        .add_provider(ProviderConfig::new("dead", &dead, "x"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network", "{err}");
    let err = env
        .tessera
        .add_provider(
            ProviderConfig::new("plain", "http://example.com", "x"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "insecure_url");
    assert_eq!(env.tessera.providers().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_kid_refetches_the_jwks_once() {
    let mut env = env(Profile::Plain).await;
    let first = env.sign_in("alice").await;
    let port = env.idp.port;
    env.idp
        .restart(IdpOptions {
            signing_keys: vec!["b", "a"],
            port,
            ..Default::default()
        })
        .await;
    let second = env.sign_in("bob").await;
    let report = env
        .tessera
        .claims(&second.id, TokenKind::IdToken)
        .await
        .unwrap();
    let kid = report.header.iter().find(|h| h.name == "kid").unwrap();
    assert_eq!(kid.value, "key-b");
    assert!(report.verified);
    assert!(
        env.tessera
            .claims(&first.id, TokenKind::IdToken)
            .await
            .unwrap()
            .verified,
        "key-a still published"
    );
}

#[tokio::test]
async fn every_id_token_check_fails_on_its_own_forged_token() {
    let env = env(Profile::Plain).await;
    let http = HttpClient::new(HttpConfig::default()).unwrap();
    let jwks = JwksCache::default();
    let jwks_uri = format!("{}/jwks", env.idp.issuer);
    let now = tessera_core::clock::Clock::now(&env.clock);
    let good = json!({"iss": env.idp.issuer, "sub": "alice", "aud": "tessera-public", "exp": now + 300, "iat": now, "nonce": "n-1"});
    let key = EncodingKey::from_rsa_pem(signing_key_pem("a").as_bytes()).unwrap();
    let sign = |claims: &Value, kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    };
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let public_pem = public_key_pem(&env.idp.issuer).await;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"key-a"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("key-a".into());
    let confused = jsonwebtoken::encode(
        &hs_header,
        &good,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    let tampered = {
        let t = sign(&good, "key-a");
        let parts: Vec<&str> = t.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(with("sub", "mallory".into()).to_string()),
            parts[2]
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("signature", unsigned),
        ("signature", confused),
        ("signature", tampered),
        ("signature", sign(&good, "no-such-key")),
        (
            "iss",
            sign(&with("iss", "http://127.0.0.1:1".into()), "key-a"),
        ),
        ("aud", sign(&with("aud", "someone-else".into()), "key-a")),
        (
            "azp",
            sign(&with("aud", json!(["tessera-public", "other"])), "key-a"),
        ),
        ("exp", sign(&with("exp", (now - 3600).into()), "key-a")),
        ("nbf", sign(&with("nbf", (now + 3600).into()), "key-a")),
        ("iat", sign(&with("iat", (now + 3600).into()), "key-a")),
        ("nonce", sign(&with("nonce", "n-2".into()), "key-a")),
        (
            "at_hash",
            sign(&with("at_hash", "AAAAAAAAAAAAAAAAAAAAAA".into()), "key-a"),
        ),
    ];
    let expect = Expectations {
        kind: TokenKind::IdToken,
        issuer: &env.idp.issuer,
        audience: Some("tessera-public"),
        client_id: "tessera-public",
        nonce: Some("n-1"),
        access_token: Some("the-access-token"),
        now,
    };
    let genuine =
        tessera_core::jwt::verify(&jwks, &http, &jwks_uri, &sign(&good, "key-a"), &expect)
            .await
            .unwrap();
    assert!(genuine.passed(), "{:?}", genuine.checks);
    for (check, token) in cases {
        let v = tessera_core::jwt::verify(&jwks, &http, &jwks_uri, &token, &expect)
            .await
            .unwrap();
        let failed: Vec<_> = v
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, [check], "{:?}", v.checks);
    }
}

async fn public_key_pem(issuer: &str) -> String {
    let jwks: Value = reqwest::get(format!("{issuer}/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "key-a")
        .unwrap();
    key.to_string()
}

#[tokio::test]
async fn sign_out_revokes_at_the_provider_and_forgets_locally() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let rt = env.refresh_token(&account.id);
    assert_eq!(env.refresh_at_idp(&rt).await.0, 200);
    let out = env.tessera.sign_out(&account.id, true).await.unwrap();
    assert!(out.revoked);
    assert!(out.logout_url.unwrap().contains("client_id=tessera-public"));
    let (status, body) = env.refresh_at_idp(&rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(env.stored(&account.id).is_none());
    assert!(env.tessera.accounts().unwrap().is_empty());
}

#[tokio::test]
async fn opaque_access_tokens_are_introspected_and_userinfo_works() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let report = env
        .tessera
        .claims(&account.id, TokenKind::AccessToken)
        .await
        .unwrap();
    assert_eq!(report.format, "opaque");
    assert!(report.verified, "{:?}", report.checks);
    assert!(
        report
            .claims
            .iter()
            .any(|c| c.name == "sub" && c.value == "alice")
    );
    assert_eq!(
        env.tessera.userinfo(&account.id).await.unwrap()["sub"],
        "alice"
    );
    assert_eq!(
        env.tessera.introspect(&account.id).await.unwrap()["active"],
        true
    );
}

/// Registers provider "api", which asks for a resource (so the access token is a JWT), and
/// signs alice in there.
async fn sign_in_for_a_resource(env: &Env) -> tessera_core::Account {
    let mut config = ProviderConfig::new("api", &env.idp.issuer, "tessera-public");
    config.resources = vec!["https://api.example.test".into()];
    config.scopes.push("read".into());
    env.tessera.add_provider(config, None).await.unwrap();
    let callback = env.callback("api", "alice").await;
    env.tessera.complete_sign_in(&callback).await.unwrap()
}

#[tokio::test]
async fn jwt_access_tokens_for_a_resource_are_verified() {
    let env = env(Profile::Plain).await;
    let account = sign_in_for_a_resource(&env).await;
    let report = env
        .tessera
        .claims(&account.id, TokenKind::AccessToken)
        .await
        .unwrap();
    assert_eq!(report.format, "jwt");
    assert!(report.verified, "{:?}", report.checks);
    let typ = report.checks.iter().find(|c| c.name == "typ").unwrap();
    assert_eq!(typ.status, CheckStatus::Pass);
    let aud = report.checks.iter().find(|c| c.name == "aud").unwrap();
    assert_eq!(aud.status, CheckStatus::Pass, "{}", aud.detail);
}

/// A long-lived process (the agent, the app) hands a token out again without reading the
/// keychain only while nothing changed: another process's refresh or sign-out retires it.
#[tokio::test]
async fn a_warm_token_is_retired_by_another_process_changing_the_account() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let other = env.other_process();
    let warm = env
        .tessera
        .access_token(&account.id, 0, false)
        .await
        .unwrap();
    let again = env
        .tessera
        .access_token(&account.id, 0, false)
        .await
        .unwrap();
    assert_eq!(again.token.expose_secret(), warm.token.expose_secret());

    // Within the same second, so `tessera.json` may well come out byte for byte as it was:
    // the account's revision tells.
    let refreshed = other.access_token(&account.id, 0, true).await.unwrap();
    assert_ne!(refreshed.token.expose_secret(), warm.token.expose_secret());
    assert_eq!(
        env.tessera
            .access_token(&account.id, 0, false)
            .await
            .unwrap()
            .token
            .expose_secret(),
        refreshed.token.expose_secret(),
        "the other process's refresh is seen"
    );

    other.sign_out(&account.id, false).await.unwrap();
    let gone = env
        .tessera
        .access_token(&account.id, 0, false)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), "unknown_account");
}

/// A process keeps the token set it read under an account's lock, but never past another
/// process's write: once the other one's refresh has rotated the refresh token (spending the
/// one kept here), this one refreshes with the new one. With reuse detection, the spent one
/// would have revoked the whole grant.
#[tokio::test]
async fn a_kept_token_set_gives_way_to_another_process_rotating_it() {
    let env = env(Profile::Rotating).await;
    let account = env.sign_in("alice").await;
    let other = env.other_process();
    assert!(env.tessera.refresh(&account.id).await.unwrap().rotated);
    assert!(other.refresh(&account.id).await.unwrap().rotated);
    let ours = env.tessera.refresh(&account.id).await.unwrap();
    assert!(ours.rotated);
    let status = env.tessera.account(&account.id).unwrap().status;
    assert_eq!(status, AccountStatus::Active);
    let rt = env.stored(&account.id).unwrap()["refresh_token"].clone();
    let (code, _) = env.refresh_at_idp(rt.as_str().unwrap()).await;
    assert_eq!(code, 200, "the stored refresh token is the live one");
}

/// A process keeps a provider's credential, but not past another process removing the
/// provider and adding it again with another secret, even though that leaves `tessera.json`
/// byte for byte as it was.
#[tokio::test]
async fn a_kept_client_secret_gives_way_to_the_provider_added_again() {
    let env = env(Profile::Plain).await;
    let auth = ClientAuth::ClientSecretBasic;
    env.add("basic", "tessera-basic", auth, Some("wrong")).await;
    let callback = env.callback("basic", "alice").await;
    let err = env.tessera.complete_sign_in(&callback).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"));

    let state = std::fs::read(env.dir.path().join("tessera.json")).unwrap();
    let other = env.other_process();
    let config = other.provider("basic").unwrap();
    other.remove_provider("basic").await.unwrap();
    let secret = tessera_core::SecretString::new("basic-secret");
    other.add_provider(config, Some(secret)).await.unwrap();
    assert_eq!(
        std::fs::read(env.dir.path().join("tessera.json")).unwrap(),
        state
    );

    let callback = env.callback("basic", "alice").await;
    env.tessera.complete_sign_in(&callback).await.unwrap();
}

/// The agent reads again what it keeps warm as soon as another process changes an account
/// (it watches `tessera.json`), so its next answer needs no keychain: here it answers with
/// the other process's new token while the keychain is locked. After a sign-out elsewhere it
/// keeps nothing.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rewarms_what_another_process_changed() {
    use tessera_core::agent::{Answer, TokenRequest};
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let runtime = tempfile::tempdir().unwrap();
    let socket = runtime.path().join("agent.sock");
    // The agent's own view of the keychain, so the test sees its reads and locks it alone.
    let keychain = env.store.view();
    let agent = Arc::new(
        Tessera::open(Options {
            data_dir: env.dir.path().to_path_buf(),
            store: Arc::new(keychain.clone()),
            clock: Arc::new(env.clock.clone()),
            http: HttpConfig::default(),
        })
        .unwrap(),
    );
    let serving = tokio::spawn({
        let (tessera, socket) = (agent, socket.clone());
        async move { tessera_core::agent::serve(tessera, &socket, Duration::from_secs(60)).await }
    });
    let ask = |socket: std::path::PathBuf, id: String| {
        let request = TokenRequest {
            account: id,
            org: None,
            min_valid: 0,
            force: false,
            id_token: false,
        };
        tokio::task::spawn_blocking(move || {
            tessera_core::agent::ask(&socket, &tessera_core::agent::Request::Token(request))
        })
    };
    let mut first = None;
    for _ in 0..100 {
        first = ask(socket.clone(), account.id.clone()).await.unwrap();
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(Answer::Token { token: first, .. }) = first else {
        panic!("the agent answers");
    };

    let other = env.other_process();
    let reads = keychain.reads();
    let refreshed = other.access_token(&account.id, 0, true).await.unwrap();
    let new = refreshed.token.expose_secret().to_string();
    assert_ne!(new, first);
    // Asked nothing, the agent reads the keychain once it sees the change: its rewarm.
    for _ in 0..500 {
        if keychain.reads() > reads {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(keychain.reads() > reads, "the agent rewarms on its own");
    keychain.set_locked(true);
    let mut answered = None;
    for _ in 0..100 {
        match ask(socket.clone(), account.id.clone()).await.unwrap() {
            Some(Answer::Token { token, .. }) if token == new => {
                answered = Some(token);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    keychain.set_locked(false);
    assert_eq!(
        answered.as_deref(),
        Some(new.as_str()),
        "served warm, keychain locked"
    );

    other.sign_out(&account.id, false).await.unwrap();
    keychain.set_locked(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ask(socket.clone(), account.id.clone()).await.unwrap();
    keychain.set_locked(false);
    match after {
        Some(Answer::Failed(failure)) => assert_eq!(failure.code, "unknown_account"),
        _ => panic!("a signed-out account's token was still served"),
    }
    serving.abort();
}
