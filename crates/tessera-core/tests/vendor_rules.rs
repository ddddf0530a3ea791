//! Stytch B2B and Stack Auth as the real services behave (issue 10), against the fakes that
//! enforce each rule: exact Stytch redirect URLs, a custom domain's issuer, the SDK's
//! `X-SDK-Client` and session durations and its answer for a dead session; Stack's restricted
//! users, OAuth through the upstream provider with no pre-flight request, its localhost rule
//! and its plain 404 for an unknown project. Each test fails with Tessera's behaviour before
//! the issue.

use std::time::Duration;

use serde_json::Value;
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::loopback::LoopbackReceiver;
use tessera_core::{
    Credential, EmailLinkOutcome, ProviderDraft, ProviderKind, Restriction, SecretString, TokenKind,
};
use tessera_testkit::fakes::{StackFake, StackFakeOptions, StytchFake, StytchFakeOptions};
use tessera_testkit::{Browser, Landing};

mod common;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stytch_draft(fake: &StytchFake, name: &str, secret: bool) -> ProviderDraft {
    ProviderDraft {
        kind: ProviderKind::StytchB2b,
        name: name.into(),
        project_id: Some(fake.project_id.clone()),
        client_key: (!secret).then(|| fake.public_token.clone()),
        credential: secret.then(|| Credential::Secret(SecretString::new(fake.secret.clone()))),
        base_url: Some(fake.base_url.clone()),
        ..Default::default()
    }
}

/// Signs alice in to `org` through a mailed discovery link back over the deep link.
async fn stytch_sign_in(
    tessera: &tessera_core::Tessera,
    fake: &StytchFake,
    provider: &str,
    org: &str,
) -> tessera_core::Result<tessera_core::Account> {
    tessera
        .start_email_sign_in(provider, "alice@example.com", DEEP_LINK_REDIRECT)
        .await?;
    let link = fake.latest_link_to("alice@example.com").await;
    let EmailLinkOutcome::PickOrganizations(discovery) = tessera.complete_email_link(&link).await?
    else {
        panic!("a discovery link lists organizations")
    };
    tessera
        .choose_organizations(&discovery.flow_id, &[org.into()])
        .await
}

fn requests_to<'a>(log: &'a [Value], path_end: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["path"].as_str().unwrap_or("").ends_with(path_end))
        .collect()
}

fn body_fields(request: &Value) -> Vec<&str> {
    request["body_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn stytch_mailed_link_returns_to_the_one_loopback_url_the_project_registered() {
    let port = free_port();
    let registered = format!("http://127.0.0.1:{port}/callback");
    let fake = StytchFake::start_with(StytchFakeOptions {
        redirect_urls: vec![registered.clone()],
        ..Default::default()
    })
    .await;
    let bare = common::bare(HttpConfig::default());
    let tessera = &bare.tessera;
    let mut draft = stytch_draft(&fake, "stytch", false);
    draft.redirect_port = Some(port.to_string());
    let config = tessera.add_provider_draft(draft).await.unwrap();
    assert_eq!(
        config.redirect_urls(),
        [registered.clone(), DEEP_LINK_REDIRECT.to_string()],
        "what to paste into the Stytch dashboard"
    );

    // A random loopback port, as Tessera used before, is not what the project registered.
    let random = LoopbackReceiver::bind().await.unwrap();
    let refused = tessera
        .start_email_sign_in("stytch", "alice@example.com", &random.redirect_uri())
        .await
        .unwrap_err();
    assert_eq!(
        refused.oauth_error(),
        Some("no_match_for_provided_magic_link_url")
    );

    let receiver = tessera.loopback_receiver("stytch").await.unwrap();
    assert_eq!(receiver.redirect_uri(), registered);
    let taken = tessera.loopback_receiver("stytch").await.unwrap_err();
    assert_eq!(taken.code(), "port_in_use", "{taken}");
    assert!(taken.to_string().contains(&port.to_string()), "{taken}");

    tessera
        .start_email_sign_in("stytch", "alice@example.com", &receiver.redirect_uri())
        .await
        .unwrap();
    let link = fake.latest_link_to("alice@example.com").await;
    assert!(link.starts_with(&format!("{registered}?")), "{link}");
    let browser = Browser::new();
    let (received, (status, _)) = tokio::join!(receiver.receive(), browser.visit(&link));
    assert_eq!(status, 200);
    let outcome = tessera
        .complete_email_link_for("stytch", &received.unwrap())
        .await
        .unwrap();
    assert!(matches!(outcome, EmailLinkOutcome::PickOrganizations(_)));
}

#[tokio::test]
async fn stytch_sdk_calls_name_the_app_and_ask_for_a_session_duration() {
    let fake = StytchFake::start().await;
    let bare = common::bare(HttpConfig::default());
    let tessera = &bare.tessera;
    tessera
        .add_provider_draft(stytch_draft(&fake, "stytch", false))
        .await
        .unwrap();
    let account = stytch_sign_in(tessera, &fake, "stytch", "acme")
        .await
        .unwrap();
    let mfa = tessera
        .org_token(&account.id, "globex", 0, false)
        .await
        .unwrap_err();
    assert_eq!(mfa.oauth_error(), Some("mfa_required"), "{mfa}");
    tessera.refresh(&account.id).await.unwrap();

    let log = fake.requests().await;
    let sdk: Vec<&Value> = log.iter().filter(|r| r["family"] == "sdk").collect();
    assert!(sdk.len() >= 5, "{log:?}");
    for request in &sdk {
        assert_eq!(
            request["headers"]["x-sdk-client"]["app"], "dev.tessera",
            "{request}"
        );
        assert_eq!(request["headers"]["origin"], Value::Null, "{request}");
        assert_eq!(request["status"], 200, "{request}");
    }
    for path in [
        "discovery/intermediate_sessions/exchange",
        "b2b/sessions/exchange",
    ] {
        let exchanges = requests_to(&log, path);
        assert!(!exchanges.is_empty(), "{path}");
        for exchange in exchanges {
            assert!(
                body_fields(exchange).contains(&"session_duration_minutes"),
                "{exchange}"
            );
        }
    }
}

#[tokio::test]
async fn a_dead_stytch_session_refused_as_sdk_credentials_ends_that_organizations_sign_in() {
    let fake = StytchFake::start().await;
    let bare = common::bare(HttpConfig::default());
    let tessera = &bare.tessera;
    tessera
        .add_provider_draft(stytch_draft(&fake, "stytch", false))
        .await
        .unwrap();
    let account = stytch_sign_in(tessera, &fake, "stytch", "acme")
        .await
        .unwrap();
    let stored = bare.store.len();

    // The session Tessera opened lasts an hour; after that Stytch refuses it in the SDK's
    // Basic header with 401 unauthorized_credentials.
    fake.advance_clock(61 * 60).await;
    bare.clock.advance(61 * 60);
    let err = tessera
        .access_token(&account.id, 30, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "org_sign_in_required", "{err}");
    let after = tessera.account(&account.id).unwrap();
    assert!(after.signed_in_orgs.is_empty(), "{after:?}");
    assert_eq!(bare.store.len(), stored, "nothing is deleted");
    let log = fake.requests().await;
    assert_eq!(
        requests_to(&log, "sessions/authenticate").last().unwrap()["error_type"],
        "unauthorized_credentials"
    );
}

#[tokio::test]
async fn stytch_custom_domain_tokens_name_the_configured_base_and_only_it() {
    let fake = StytchFake::start_with(StytchFakeOptions {
        custom_domain: true,
        ..Default::default()
    })
    .await;
    assert_eq!(fake.issuer, fake.base_url);
    let bare = common::bare(HttpConfig::default());
    let tessera = &bare.tessera;
    for (name, secret) in [("sdk", false), ("backend", true)] {
        tessera
            .add_provider_draft(stytch_draft(&fake, name, secret))
            .await
            .unwrap();
        let account = stytch_sign_in(tessera, &fake, name, "acme").await.unwrap();
        let report = tessera
            .claims(&account.id, TokenKind::AccessToken)
            .await
            .unwrap();
        assert!(report.verified, "{name}: {:?}", report.checks);
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.name == "iss" && c.detail.contains(&fake.base_url)),
            "{:?}",
            report.checks
        );
        tessera.refresh(&account.id).await.unwrap();
    }

    // The same server under another base URL: its tokens name a base this provider is not.
    let port = fake.base_url.rsplit(':').next().unwrap();
    let mut elsewhere = stytch_draft(&fake, "elsewhere", false);
    elsewhere.base_url = Some(format!("http://localhost:{port}"));
    tessera.add_provider_draft(elsewhere).await.unwrap();
    let entries = bare.store.len();
    let refused = stytch_sign_in(tessera, &fake, "elsewhere", "acme")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "token_rejected", "{refused}");
    assert!(refused.to_string().contains("issuer"), "{refused}");
    assert_eq!(bare.store.len(), entries, "a refused token stores nothing");
}

async fn with_stack(fake: &StackFake) -> common::Bare {
    let bare = common::bare(HttpConfig::default());
    bare.tessera
        .add_provider_draft(stack_draft(fake, &fake.project_id))
        .await
        .unwrap();
    bare
}

fn stack_draft(fake: &StackFake, project: &str) -> ProviderDraft {
    ProviderDraft {
        kind: ProviderKind::StackAuth,
        name: "stack".into(),
        project_id: Some(project.into()),
        client_key: Some(fake.publishable_key.clone()),
        base_url: Some(fake.base_url.clone()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stack_user_with_an_unverified_email_is_a_restricted_account_until_verified() {
    let fake = StackFake::start_with(StackFakeOptions {
        require_email_verification: true,
        ..Default::default()
    })
    .await;
    let bare = with_stack(&fake).await;
    let tessera = &bare.tessera;
    let demo = SecretString::new("demo");

    let erin = tessera
        .sign_in_with_password("stack", "erin@example.com", &demo)
        .await
        .unwrap();
    assert_eq!(erin.restriction, Some(Restriction::EmailNotVerified));
    assert_eq!(erin.status, tessera_core::AccountStatus::Active);
    let report = tessera
        .claims(&erin.id, TokenKind::AccessToken)
        .await
        .unwrap();
    assert!(report.verified, "{:?}", report.checks);
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "iss" && c.detail.contains("projects-restricted-users")),
        "{:?}",
        report.checks
    );
    let teams = tessera.organizations(&erin.id).await.unwrap();
    assert_eq!(
        teams.len(),
        1,
        "calls with a restricted token say Tessera allows it"
    );
    let state = std::fs::read_to_string(bare.dir.path().join("tessera.json")).unwrap();
    assert!(
        state.contains("\"restriction\": \"email_not_verified\""),
        "{state}"
    );

    let alice = tessera
        .sign_in_with_password("stack", "alice@example.com", &demo)
        .await
        .unwrap();
    assert_eq!(alice.restriction, None, "a verified user is not restricted");

    tessera.refresh(&erin.id).await.unwrap();
    assert_eq!(
        tessera.account(&erin.id).unwrap().restriction,
        Some(Restriction::EmailNotVerified),
        "still unverified"
    );
    fake.verify_email("erin@example.com").await;
    tessera.refresh(&erin.id).await.unwrap();
    assert_eq!(tessera.account(&erin.id).unwrap().restriction, None);

    let log = fake.requests().await;
    let jwks = requests_to(&log, "/.well-known/jwks.json");
    assert!(!jwks.is_empty());
    assert!(
        jwks.iter().all(|r| r["query"] == "include_restricted=true"),
        "{jwks:?}"
    );
    let teams_calls = requests_to(&log, "/teams");
    assert!(
        teams_calls
            .iter()
            .all(|r| r["headers"]["x-stack-allow-restricted-user"] == "true"),
        "{teams_calls:?}"
    );
}

#[tokio::test]
async fn stack_oauth_starts_without_touching_the_authorize_endpoint() {
    let fake = StackFake::start().await;
    let bare = with_stack(&fake).await;
    let tessera = &bare.tessera;
    let oauth = |id: &str| vec![("oauth_provider".to_string(), id.to_string())];

    fake.clear_requests().await;
    let start = tessera
        .start_sign_in("stack", "http://127.0.0.1:4567/callback", &oauth("github"))
        .await
        .unwrap();
    let unknown = tessera
        .start_sign_in("stack", "http://127.0.0.1:4567/callback", &oauth("myspace"))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.oauth_error(),
        Some("OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED"),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("github"), "{unknown}");
    let ipv6 = tessera
        .start_sign_in("stack", "http://[::1]:4567/callback", &oauth("github"))
        .await
        .unwrap_err();
    assert_eq!(ipv6.code(), "invalid_config");
    assert!(ipv6.to_string().contains("127.0.0.1"), "{ipv6}");
    let log = fake.requests().await;
    assert!(
        requests_to(&log, "/auth/oauth/authorize/github").is_empty()
            && requests_to(&log, "/auth/oauth/authorize/myspace").is_empty(),
        "no flow is left behind at Stack: {log:?}"
    );
    assert_eq!(requests_to(&log, "/projects/current").len(), 2);
    assert!(tessera.is_sign_in_pending(&start.flow_id));

    let mailed = tessera
        .start_email_sign_in("stack", "bob@example.com", "http://[::1]:4567/callback")
        .await
        .unwrap_err();
    assert_eq!(mailed.code(), "invalid_config", "{mailed}");
}

#[tokio::test]
async fn a_stack_oauth_sign_in_that_never_comes_back_names_the_likely_cause() {
    let fake = StackFake::start().await;
    let bare = with_stack(&fake).await;
    let tessera = &bare.tessera;
    fake.forget_oauth_user().await;
    let params = vec![("oauth_provider".to_string(), "github".to_string())];

    // The person cancels at GitHub; Stack shows its error page and Tessera hears nothing.
    for give_up in ["timeout", "cancel"] {
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let (stuck_tx, stuck_rx) = tokio::sync::oneshot::channel::<()>();
        let browser = async {
            let url = url_rx.await.unwrap();
            let landing = Browser::new().follow_deny(&url).await;
            assert!(
                matches!(&landing, Landing::Page { status: 400, .. }),
                "{landing:?}"
            );
            let _ = stuck_tx.send(());
        };
        let cancel = async {
            let _ = stuck_rx.await;
            if give_up == "timeout" {
                std::future::pending::<()>().await;
            }
        };
        let timeout = Duration::from_secs(if give_up == "timeout" { 3 } else { 60 });
        let (result, ()) = tokio::join!(
            tessera.sign_in_with_loopback(
                "stack",
                &params,
                |start| {
                    let _ = url_tx.send(start.authorization_url.clone());
                },
                timeout,
                cancel,
            ),
            browser
        );
        let err = result.unwrap_err();
        assert_eq!(
            err.code(),
            if give_up == "timeout" {
                "timeout"
            } else {
                "cancelled"
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("REDIRECT_URL_NOT_WHITELISTED") && message.contains("127.0.0.1"),
            "{message}"
        );
    }
    assert!(tessera.accounts().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_stack_project_is_named_as_such() {
    let fake = StackFake::start().await;
    let bare = common::bare(HttpConfig::default());
    let unknown = "99999999-2222-3333-4444-555555555555";
    let err = bare
        .tessera
        .add_provider_draft(stack_draft(&fake, unknown))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config", "{err}");
    assert!(err.to_string().contains(unknown), "{err}");
    assert!(bare.tessera.providers().unwrap().is_empty());
}
