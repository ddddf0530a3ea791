//! The provider adapters end to end: Auth0, Logto and Stitch against the real oidc-provider
//! dressed as each (`tests/idp --flavor`), with their organization rules; Stytch B2B and
//! Stack Auth against their faithful fakes.

use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::jwt::decode_unverified_for_display;
use tessera_core::vault::SecretStore;
use tessera_core::{
    ClientAuth, Credential, EmailLinkOutcome, ProviderConfig, ProviderDraft, ProviderKind,
    SecretString,
};
use tessera_testkit::fakes::StackFake;
use tessera_testkit::{Flavor, IdpOptions, Profile, client_pkjwt_pem};

mod common;
use common::{Env, env_with};

async fn flavored(flavor: Flavor) -> Env {
    env_with(
        IdpOptions {
            flavor,
            ..Default::default()
        },
        HttpConfig::default(),
    )
    .await
}

impl Env {
    async fn add_kind(
        &self,
        name: &str,
        kind: ProviderKind,
        client: &str,
        edit: impl FnOnce(&mut ProviderConfig),
    ) {
        let draft = ProviderDraft {
            kind,
            name: name.into(),
            issuer: Some(self.idp.issuer.clone()),
            client_id: Some(client.into()),
            ..Default::default()
        };
        let mut config = draft.configure().unwrap();
        edit(&mut config);
        let credential = (config.client_auth == ClientAuth::PrivateKeyJwt)
            .then(|| SecretString::new(client_pkjwt_pem()));
        self.tessera.add_provider(config, credential).await.unwrap();
    }

    async fn sign_in_with(
        &self,
        provider: &str,
        user: &str,
        params: &[(&str, &str)],
    ) -> tessera_core::Result<tessera_core::Account> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let start = self
            .tessera
            .start_sign_in(provider, DEEP_LINK_REDIRECT, &params)
            .await?;
        let callback = match user {
            "alice" => self.browser.login(&start.authorization_url, user).await,
            _ => {
                tessera_testkit::Browser::new()
                    .login(&start.authorization_url, user)
                    .await
            }
        };
        self.tessera.complete_sign_in(&callback).await
    }
}

fn claim(token: &SecretString, name: &str) -> serde_json::Value {
    decode_unverified_for_display(token.expose_secret())
        .unwrap()
        .payload
        .get(name)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn auth0_keeps_one_token_set_per_organization() {
    let env = flavored(Flavor::Auth0).await;
    env.add_kind("auth0", ProviderKind::Auth0, "tessera-public", |c| {
        c.audience = Some("https://api.example.test".into())
    })
    .await;

    let acme = env
        .sign_in_with("auth0", "alice", &[("organization", "acme")])
        .await
        .unwrap();
    assert_eq!(acme.signed_in_orgs, ["org_acme"]);
    assert_eq!(
        acme.org_names.get("org_acme").map(String::as_str),
        Some("acme")
    );
    let globex = env
        .sign_in_with("auth0", "alice", &[("organization", "org_globex")])
        .await
        .unwrap();
    assert_eq!(globex.id, acme.id, "the same person, another organization");
    assert_eq!(globex.signed_in_orgs, ["org_acme", "org_globex"]);
    assert_eq!(globex.current_org.as_deref(), Some("org_globex"));

    let views = env.tessera.organizations(&acme.id).await.unwrap();
    assert!(
        views.iter().all(|o| o.signed_in) && views.len() == 2,
        "{views:?}"
    );
    let token = env
        .tessera
        .org_token(&acme.id, "acme", 0, false)
        .await
        .unwrap();
    assert_eq!(claim(&token.token, "org_id"), "org_acme");
    let refreshed = env
        .tessera
        .org_token(&acme.id, "org_acme", 0, true)
        .await
        .unwrap();
    assert!(refreshed.refreshed);
    assert_eq!(
        claim(&refreshed.token, "org_id"),
        "org_acme",
        "the refresh stays bound to its organization"
    );
    assert_eq!(
        claim(
            &env.tessera
                .org_token(&acme.id, "globex", 0, false)
                .await
                .unwrap()
                .token,
            "org_id"
        ),
        "org_globex"
    );

    env.tessera.switch_org(&acme.id, "acme").await.unwrap();
    let current = env.tessera.access_token(&acme.id, 0, false).await.unwrap();
    assert_eq!(claim(&current.token, "org_id"), "org_acme");

    let denied = env
        .sign_in_with("auth0", "bob", &[("organization", "globex")])
        .await
        .unwrap_err();
    assert_eq!(denied.oauth_error(), Some("access_denied"));
    assert!(denied.to_string().contains("org_globex"), "{denied}");
    assert_eq!(
        env.tessera.accounts().unwrap().len(),
        1,
        "nothing stored for bob"
    );

    let bob = env
        .sign_in_with("auth0", "bob", &[("organization", "acme")])
        .await
        .unwrap();
    let err = env
        .tessera
        .org_token(&bob.id, "globex", 0, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "org_sign_in_required");

    let out = env.tessera.sign_out(&acme.id, true).await.unwrap();
    assert!(out.revoked);
    assert!(
        out.logout_url
            .unwrap()
            .contains("/v2/logout?client_id=tessera-public")
    );
}

#[tokio::test]
async fn logto_organization_tokens_rotate_through_the_single_flight_path() {
    let env = flavored(Flavor::Logto).await;
    env.add_kind("logto", ProviderKind::Logto, "tessera-public", |_| {})
        .await;
    let account = env.sign_in_with("logto", "alice", &[]).await.unwrap();
    assert_eq!(account.orgs, ["acme", "globex"]);
    let before = env.refresh_token(&account.id);

    let acme = env
        .tessera
        .org_token(&account.id, "acme", 0, false)
        .await
        .unwrap();
    assert_eq!(claim(&acme.token, "aud"), "urn:logto:organization:acme");
    assert_eq!(claim(&acme.token, "organization_id"), "acme");
    let after = env.refresh_token(&account.id);
    assert_ne!(
        before, after,
        "the organization token rotated the account's refresh token, and it was kept"
    );

    let cached = env
        .tessera
        .org_token(&account.id, "acme", 0, false)
        .await
        .unwrap();
    assert!(!cached.refreshed, "a valid organization token is reused");
    let globex = env
        .tessera
        .org_token(&account.id, "globex", 0, false)
        .await
        .unwrap();
    assert_eq!(claim(&globex.token, "aud"), "urn:logto:organization:globex");
    env.tessera.refresh(&account.id).await.unwrap();
    let events = env.idp.events().await.to_string();
    assert!(
        !events.contains("grant.revoked"),
        "no refresh token was ever reused: {events}"
    );

    let bob = env.sign_in_with("logto", "bob", &[]).await.unwrap();
    let kept = env.stored(&bob.id);
    let err = env
        .tessera
        .org_token(&bob.id, "globex", 0, false)
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("access_denied"), "{err}");
    assert_eq!(
        env.stored(&bob.id),
        kept,
        "a refused organization token changes nothing"
    );
    assert_eq!(
        env.tessera
            .switch_org(&bob.id, "acme")
            .await
            .unwrap_err()
            .code(),
        "unsupported"
    );
}

#[tokio::test]
async fn stitch_with_private_key_jwt_and_single_use_refresh_tokens() {
    let env = flavored(Flavor::Stitch).await;
    env.add_kind("stitch", ProviderKind::Stitch, "tessera-pkjwt", |c| {
        c.client_auth = ClientAuth::PrivateKeyJwt;
        c.key_id = Some("client-pkjwt".into());
    })
    .await;
    let account = match env.sign_in_with("stitch", "alice", &[]).await {
        Ok(a) => a,
        Err(e) => panic!("{e}: {}", env.idp.events().await),
    };
    let first = env.refresh_token(&account.id);
    assert!(env.tessera.refresh(&account.id).await.unwrap().rotated);
    assert!(env.tessera.refresh(&account.id).await.unwrap().rotated);
    assert_ne!(env.refresh_token(&account.id), first);
    let err = env.tessera.organizations(&account.id).await.unwrap();
    assert!(err.is_empty(), "Stitch has no organizations");
    assert!(
        env.tessera
            .sign_out(&account.id, true)
            .await
            .unwrap()
            .revoked
    );
}

#[tokio::test]
async fn rotating_auth0_profile_and_org_refresh_loss_marks_only_that_org() {
    let env = env_with(
        IdpOptions {
            flavor: Flavor::Auth0,
            profile: Profile::Rotating,
            ..Default::default()
        },
        HttpConfig::default(),
    )
    .await;
    env.add_kind("auth0", ProviderKind::Auth0, "tessera-public", |_| {})
        .await;
    let account = env
        .sign_in_with("auth0", "alice", &[("organization", "acme")])
        .await
        .unwrap();
    env.sign_in_with("auth0", "alice", &[("organization", "globex")])
        .await
        .unwrap();
    let raw = env
        .store
        .get(&format!(
            "{}/org/org_acme",
            env.tessera.keychain_key(&account.id)
        ))
        .unwrap()
        .unwrap();
    let rt =
        serde_json::from_str::<serde_json::Value>(raw.expose_secret()).unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    let response = reqwest::Client::new()
        .post(env.idp.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", "tessera-public"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let err = env
        .tessera
        .org_token(&account.id, "acme", 0, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "org_sign_in_required");
    let now = env.tessera.account(&account.id).unwrap();
    assert_eq!(
        now.signed_in_orgs,
        ["org_globex"],
        "only the organization whose grant died is signed out"
    );
    assert_eq!(now.status, tessera_core::AccountStatus::Active);
    env.tessera
        .org_token(&account.id, "globex", 0, true)
        .await
        .unwrap();
}

/// A `Tessera` with the Stack fake's project registered as provider "stack".
async fn with_stack(fake: &StackFake) -> common::Bare {
    let bare = common::bare(HttpConfig::default());
    let draft = ProviderDraft {
        kind: ProviderKind::StackAuth,
        name: "stack".into(),
        project_id: Some(fake.project_id.clone()),
        client_key: Some(fake.publishable_key.clone()),
        base_url: Some(fake.base_url.clone()),
        ..Default::default()
    };
    bare.tessera.add_provider_draft(draft).await.unwrap();
    bare
}

#[tokio::test]
async fn stack_auth_password_and_mailed_code_sign_in_with_team_switching() {
    let fake = StackFake::start().await;
    let common::Bare {
        tessera,
        store,
        clock,
        dir: _dir,
    } = with_stack(&fake).await;

    let password = SecretString::new("demo");
    let alice = tessera
        .sign_in_with_password("stack", "alice@example.com", &password)
        .await
        .unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    let teams = tessera.organizations(&alice.id).await.unwrap();
    assert_eq!(teams.len(), 2, "{teams:?}");
    let acme = teams
        .iter()
        .find(|t| t.name.as_deref() == Some("Team Acme"))
        .unwrap();
    assert!(acme.current && acme.signed_in);
    let report = tessera
        .claims(&alice.id, tessera_core::TokenKind::AccessToken)
        .await
        .unwrap();
    assert!(
        report.verified,
        "ES256 access token verified: {:?}",
        report.checks
    );

    let globex = tessera
        .org_token(&alice.id, "Team Globex", 0, false)
        .await
        .unwrap();
    let globex_id = teams
        .iter()
        .find(|t| t.name.as_deref() == Some("Team Globex"))
        .unwrap()
        .id
        .clone();
    assert_eq!(claim(&globex.token, "selected_team_id"), globex_id.as_str());
    assert_eq!(
        tessera.account(&alice.id).unwrap().current_org,
        Some(globex_id)
    );
    let switched = tessera.switch_org(&alice.id, "Team Acme").await.unwrap();
    assert_eq!(switched.current_org.as_deref(), Some(acme.id.as_str()));
    assert!(
        !tessera.refresh(&alice.id).await.unwrap().rotated,
        "Stack never rotates refresh tokens"
    );

    fake.advance_clock(700).await;
    clock.advance(700);
    let fresh = tessera.access_token(&alice.id, 30, false).await.unwrap();
    assert!(fresh.refreshed, "an expired access token is refreshed");

    let entries = store.len();
    let mfa = tessera
        .sign_in_with_password("stack", "carol@example.com", &password)
        .await
        .unwrap_err();
    assert_eq!(
        mfa.oauth_error(),
        Some("MULTI_FACTOR_AUTHENTICATION_REQUIRED")
    );
    assert!(mfa.to_string().contains("authenticator"), "{mfa}");
    let wrong = tessera
        .sign_in_with_password("stack", "alice@example.com", &SecretString::new("nope"))
        .await
        .unwrap_err();
    assert_eq!(wrong.oauth_error(), Some("EMAIL_PASSWORD_MISMATCH"));
    assert!(
        wrong.to_string().contains("Check the e-mail address"),
        "{wrong}"
    );
    assert_eq!(
        (store.len(), tessera.accounts().unwrap().len()),
        (entries, 1),
        "failed sign-ins store nothing"
    );

    tessera
        .start_email_sign_in("stack", "bob@example.com", "http://127.0.0.1:9/callback")
        .await
        .unwrap();
    let link = fake.latest_link_to("bob@example.com").await;
    let EmailLinkOutcome::SignedIn(bob) = tessera
        .complete_email_link_for("stack", &link)
        .await
        .unwrap()
    else {
        panic!("a Stack link signs in")
    };
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
    let reused = tessera
        .complete_email_link_for("stack", &link)
        .await
        .unwrap_err();
    assert_eq!(
        reused.code(),
        "unknown_state",
        "a link works once: {reused}"
    );

    // The six characters shown in the mail, typed (in any case) instead of clicking the link.
    assert_eq!(
        tessera
            .sign_in_with_mailed_code("stack", "ABC123")
            .await
            .unwrap_err()
            .code(),
        "unknown_state",
        "no code was mailed since the last one was used"
    );
    tessera
        .start_email_sign_in("stack", "bob@example.com", "http://127.0.0.1:9/callback")
        .await
        .unwrap();
    let otp = fake.latest_otp_to("bob@example.com").await;
    let entries = store.len();
    let malformed = tessera
        .sign_in_with_mailed_code("stack", "12")
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), "invalid_config");
    let wrong_otp = if otp == "AAAAAA" { "BBBBBB" } else { "AAAAAA" };
    let wrong = tessera
        .sign_in_with_mailed_code("stack", wrong_otp)
        .await
        .unwrap_err();
    assert!(wrong.oauth_error().is_some(), "{wrong}");
    assert_eq!(store.len(), entries, "a wrong code stores nothing");
    let typed = tessera
        .sign_in_with_mailed_code("stack", &format!(" {} ", otp.to_lowercase()))
        .await
        .unwrap();
    assert_eq!(
        typed.id, bob.id,
        "a wrong code may be followed by the right one"
    );
    assert_eq!(
        tessera
            .sign_in_with_mailed_code("stack", &otp)
            .await
            .unwrap_err()
            .code(),
        "unknown_state",
        "a typed code works once"
    );

    let out = tessera.sign_out(&alice.id, true).await.unwrap();
    assert!(out.revoked);
    assert_eq!(tessera.accounts().unwrap().len(), 1);
}

#[tokio::test]
async fn stack_auth_oauth_sign_in_through_the_browser_runs_on_the_pending_flows() {
    let fake = StackFake::start().await;
    let common::Bare {
        tessera,
        store,
        dir,
        ..
    } = with_stack(&fake).await;
    fake.set_oauth_user("bob@example.com").await;
    let redirect = "http://127.0.0.1:4567/callback";
    let oauth = |id: &str| vec![("oauth_provider".to_string(), id.to_string())];

    let start = tessera
        .start_sign_in("stack", redirect, &oauth("github"))
        .await
        .unwrap();
    let url = url::Url::parse(&start.authorization_url).unwrap();
    assert_eq!(url.path(), "/api/v1/auth/oauth/authorize/github");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    for (name, value) in [
        ("client_id", fake.project_id.as_str()),
        ("client_secret", fake.publishable_key.as_str()),
        ("redirect_uri", redirect),
        ("scope", "legacy"),
        ("state", start.flow_id.as_str()),
        ("grant_type", "authorization_code"),
        ("code_challenge_method", "S256"),
        ("response_type", "code"),
    ] {
        assert_eq!(query.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(!query.contains_key("nonce") && !query.contains_key("oauth_provider"));

    // Through Stack to the upstream provider (where the browser is signed in as bob) and back.
    let callback = tessera_testkit::Browser::new()
        .login(url.as_str(), "bob@example.com")
        .await;
    assert!(callback.starts_with(redirect), "{callback}");
    let bob = tessera.complete_sign_in(&callback).await.unwrap();
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
    let report = tessera
        .claims(&bob.id, tessera_core::TokenKind::AccessToken)
        .await
        .unwrap();
    assert!(report.verified, "{:?}", report.checks);
    assert!(bob.current_org.is_some(), "the selected team is taken over");
    let exchange = fake
        .requests()
        .await
        .into_iter()
        .find(|r| r["path"] == "/api/v1/auth/oauth/token")
        .unwrap();
    let mut fields: Vec<&str> = exchange["body_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "client_id",
            "client_secret",
            "code",
            "code_verifier",
            "grant_type",
            "redirect_uri"
        ]
    );

    let stored = || {
        let tokens = store.get(&tessera.keychain_key(&bob.id)).unwrap().unwrap();
        let state = std::fs::read(dir.path().join("tessera.json")).unwrap();
        (tokens.expose_secret().to_string(), state, store.len())
    };
    let before = stored();
    let replayed = tessera.complete_sign_in(&callback).await.unwrap_err();
    assert_eq!(replayed.code(), "state_replayed");
    let forged = callback.replace(&start.flow_id, "forged-state");
    assert_eq!(
        tessera.complete_sign_in(&forged).await.unwrap_err().code(),
        "unknown_state"
    );
    let denied = tessera
        .start_sign_in("stack", redirect, &oauth("google"))
        .await
        .unwrap();
    let denial = tessera
        .complete_sign_in(&format!(
            "{redirect}?error=access_denied&state={}",
            denied.flow_id
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (denial.code(), denial.oauth_error()),
        ("authorization_denied", Some("access_denied"))
    );

    let unknown = tessera
        .start_sign_in("stack", redirect, &oauth("myspace"))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.oauth_error(),
        Some("OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED"),
        "{unknown}"
    );
    let untrusted = tessera
        .start_sign_in("stack", DEEP_LINK_REDIRECT, &oauth("github"))
        .await
        .unwrap_err();
    assert_eq!(untrusted.code(), "invalid_config", "{untrusted}");
    assert!(untrusted.to_string().contains("loopback"), "{untrusted}");
    let missing = tessera
        .start_sign_in("stack", redirect, &[])
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "invalid_config");
    assert!(missing.to_string().contains("OAuth provider"), "{missing}");
    assert_eq!(
        stored(),
        before,
        "refused callbacks and sign-ins change nothing stored"
    );
    assert_eq!(tessera.accounts().unwrap().len(), 1);
}

#[tokio::test]
async fn stytch_discovery_link_org_pick_refresh_and_sign_out_through_both_apis() {
    let fake = tessera_testkit::fakes::StytchFake::start().await;
    let common::Bare {
        tessera,
        store,
        clock,
        dir: _dir,
    } = common::bare(HttpConfig::default());
    for (name, secret) in [
        ("stytch-sdk", None),
        ("stytch-backend", Some(fake.secret.clone())),
    ] {
        let draft = ProviderDraft {
            kind: ProviderKind::StytchB2b,
            name: name.into(),
            project_id: Some(fake.project_id.clone()),
            client_key: secret.is_none().then(|| fake.public_token.clone()),
            base_url: Some(fake.base_url.clone()),
            credential: secret.map(|s| Credential::Secret(SecretString::new(s))),
            ..Default::default()
        };
        tessera.add_provider_draft(draft).await.unwrap();
    }

    for provider in ["stytch-sdk", "stytch-backend"] {
        tessera
            .start_email_sign_in(provider, "alice@example.com", DEEP_LINK_REDIRECT)
            .await
            .unwrap();
        let link = fake.latest_link_to("alice@example.com").await;
        assert!(link.starts_with("dev.tessera:/callback?"), "{link}");
        let EmailLinkOutcome::PickOrganizations(discovery) =
            tessera.complete_email_link(&link).await.unwrap()
        else {
            panic!("a Stytch discovery link lists organizations")
        };
        assert_eq!(discovery.provider, provider);
        let slugs: Vec<_> = discovery
            .organizations
            .iter()
            .filter_map(|o| o.slug.clone())
            .collect();
        assert!(
            slugs.contains(&"acme".into()) && slugs.contains(&"globex".into()),
            "{slugs:?}"
        );
        assert_eq!(
            tessera.complete_email_link(&link).await.unwrap_err().code(),
            "unknown_state",
            "a link works once"
        );

        let account = tessera
            .choose_organizations(&discovery.flow_id, &["acme".into()])
            .await
            .unwrap();
        assert_eq!(account.subject, "alice@example.com");
        assert_eq!(account.signed_in_orgs.len(), 1);
        let report = tessera
            .claims(&account.id, tessera_core::TokenKind::AccessToken)
            .await
            .unwrap();
        assert!(report.verified, "{provider}: {:?}", report.checks);
        assert!(
            report
                .claims
                .iter()
                .any(|c| c.name == "https://stytch.com/organization")
        );

        let kept = store.len();
        let mfa = tessera
            .org_token(&account.id, "globex", 0, false)
            .await
            .unwrap_err();
        assert_eq!(mfa.oauth_error(), Some("mfa_required"), "{mfa}");
        assert!(mfa.to_string().contains("Globex"), "{mfa}");
        assert_eq!(
            store.len(),
            kept,
            "an organization that needs MFA stores nothing"
        );

        let outcome = tessera.refresh(&account.id).await.unwrap();
        assert!(!outcome.rotated, "the session token never rotates");
        fake.advance_clock(301).await;
        clock.advance(301);
        assert!(
            tessera
                .access_token(&account.id, 30, false)
                .await
                .unwrap()
                .refreshed
        );

        // A batch moves the organization's session to the shelf; it is found there.
        let batch = tessera.refresh_all(16).await.unwrap();
        assert!(batch.iter().all(|(_, r)| r.is_ok()), "{provider}");
        let mfa = tessera
            .org_token(&account.id, "globex", 0, false)
            .await
            .unwrap_err();
        assert_eq!(mfa.oauth_error(), Some("mfa_required"), "{mfa}");

        let orgs = tessera.organizations(&account.id).await.unwrap();
        assert!(
            orgs.iter()
                .any(|o| o.current && o.signed_in && o.name.as_deref() == Some("Acme")),
            "{orgs:?}"
        );
        assert!(tessera.sign_out(&account.id, true).await.unwrap().revoked);
        assert!(tessera.accounts().unwrap().is_empty());
    }
}
