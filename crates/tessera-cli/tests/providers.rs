//! Each provider of the seeds through the `tessera` binary and the real keychain: sign in,
//! list organizations, a token for a second organization, refresh, sign out. Auth0, Logto and
//! Stitch run against the real oidc-provider dressed as each; Stytch B2B and Stack Auth
//! against their faithful fakes.

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::fakes::{StackFake, StytchFake};
use tessera_testkit::{Browser, Flavor, Idp, IdpOptions, client_pkjwt_pem};

mod common;
use common::{Cli, assert_keychain_available, text};

fn claim(token: &str, name: &str) -> Value {
    tessera_core::jwt::decode_unverified_for_display(token.trim())
        .unwrap()
        .payload[name]
        .clone()
}

async fn oidc(flavor: Flavor, kind: &str, extra: &[&str]) -> (Idp, Cli) {
    assert_keychain_available();
    let idp = Idp::start(IdpOptions {
        flavor,
        ..Default::default()
    })
    .await;
    let cli = Cli::default();
    let issuer = idp.issuer.clone();
    let mut args = vec!["provider", "add", kind, "--kind", kind, "--issuer", &issuer];
    args.extend(extra);
    cli.ok(&args).await;
    (idp, cli)
}

#[tokio::test]
async fn auth0_organizations_are_sign_ins_of_their_own() {
    let (_idp, cli) = oidc(
        Flavor::Auth0,
        "auth0",
        &[
            "--client-id",
            "tessera-public",
            "--audience",
            "https://api.example.test",
        ],
    )
    .await;
    let id = cli.login_with("auth0", "alice", &["--org", "acme"]).await;
    assert_eq!(
        cli.login_with("auth0", "alice", &["--org", "globex"]).await,
        id
    );
    let orgs = cli.json(&["orgs", &id, "--json"]).await;
    assert_eq!(orgs.as_array().unwrap().len(), 2, "{orgs}");
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .all(|o| o["signed_in"] == true)
    );
    let acme = cli.ok(&["token", &id, "--org", "acme"]).await;
    assert_eq!(claim(&acme, "org_id"), "org_acme");
    let globex = cli
        .ok(&["token", &id, "--org", "globex", "--refresh"])
        .await;
    assert_eq!(claim(&globex, "org_id"), "org_globex");
    cli.ok(&["switch", &id, "acme"]).await;
    assert_eq!(claim(&cli.ok(&["token", &id]).await, "org_id"), "org_acme");
    cli.ok(&["refresh", &id]).await;
    let out = cli.run(&["logout", &id], None).await;
    assert!(
        text(&out.stderr).contains("/v2/logout"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn logto_organization_tokens_from_the_command_line() {
    let (idp, cli) = oidc(Flavor::Logto, "logto", &["--client-id", "tessera-public"]).await;
    assert!(idp.issuer.ends_with("/oidc"));
    let id = cli.login_with("logto", "alice", &[]).await;
    let orgs = cli.json(&["orgs", &id, "--json"]).await;
    let ids: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex"]);
    let acme = cli.ok(&["token", &id, "--org", "acme"]).await;
    assert_eq!(claim(&acme, "aud"), "urn:logto:organization:acme");
    let globex = cli.ok(&["token", &id, "--org", "globex"]).await;
    assert_eq!(claim(&globex, "aud"), "urn:logto:organization:globex");
    assert_eq!(cli.json(&["refresh", &id, "--json"]).await["rotated"], true);
    let out = cli.run(&["switch", &id, "acme"], None).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "Logto has no current organization"
    );
    let events = idp.events().await.to_string();
    assert!(!events.contains("grant.revoked"), "{events}");
    let out = cli
        .run(&["login", "logto", "--oauth", "github"], None)
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("only Stack Auth offers OAuth sign-in"),
        "{}",
        text(&out.stderr)
    );
    cli.ok(&["logout", &id]).await;
}

#[tokio::test]
async fn stitch_private_key_jwt_from_the_command_line() {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), client_pkjwt_pem()).unwrap();
    let key_path = key.path().to_str().unwrap().to_string();
    let (_idp, cli) = oidc(
        Flavor::Stitch,
        "stitch",
        &[
            "--client-id",
            "tessera-pkjwt",
            "--private-key-file",
            &key_path,
            "--key-id",
            "client-pkjwt",
        ],
    )
    .await;
    let id = cli.login_with("stitch", "alice", &[]).await;
    assert_eq!(
        cli.json(&["orgs", &id, "--json"]).await,
        serde_json::json!([])
    );
    assert_eq!(
        cli.json(&["refresh", &id, "--json"]).await["rotated"],
        true,
        "single-use refresh tokens"
    );
    assert_eq!(cli.json(&["refresh", &id, "--json"]).await["rotated"], true);
    assert!(
        cli.files_contain("PRIVATE KEY").is_empty(),
        "the key lives in the keychain only"
    );
    cli.ok(&["logout", &id]).await;
}

#[tokio::test]
async fn stack_auth_teams_from_the_command_line() {
    assert_keychain_available();
    let (_fake, cli) = stack_provider().await;
    let out = cli
        .run(
            &[
                "login",
                "stack",
                "--email",
                "alice@example.com",
                "--password-stdin",
            ],
            Some("demo\n"),
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let teams = cli.json(&["orgs", &id, "--json"]).await;
    let globex = teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Team Globex")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = cli.ok(&["token", &id, "--org", "Team Globex"]).await;
    assert_eq!(claim(&token, "selected_team_id"), globex.as_str());
    cli.ok(&["switch", &id, "Team Acme"]).await;
    assert_eq!(
        cli.json(&["refresh", &id, "--json"]).await["rotated"],
        false
    );
    let out = cli
        .run(
            &[
                "login",
                "stack",
                "--email",
                "carol@example.com",
                "--password-stdin",
            ],
            Some("demo"),
        )
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("MULTI_FACTOR_AUTHENTICATION_REQUIRED"),
        "{}",
        text(&out.stderr)
    );
    cli.ok(&["logout", &id]).await;
    assert_eq!(
        cli.json(&["accounts", "--json"]).await,
        serde_json::json!([])
    );
}

#[tokio::test]
async fn stack_auth_oauth_through_the_browser_from_the_command_line() {
    assert_keychain_available();
    let (fake, cli) = stack_provider().await;
    fake.set_oauth_user("bob@example.com").await;
    let id = cli
        .login_with("stack", "bob@example.com", &["--oauth", "github"])
        .await;
    let accounts = cli.json(&["accounts", "--json"]).await;
    assert_eq!(accounts[0]["id"], id.as_str());
    assert_eq!(accounts[0]["email"], "bob@example.com", "{accounts}");
    let token = cli.ok(&["token", &id]).await;
    assert_eq!(claim(&token, "email"), "bob@example.com");
    assert!(cli.tokens(&id).await["refresh_token"].is_string());

    let out = cli
        .run(
            &["login", "stack", "--oauth", "myspace", "--no-browser"],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED"),
        "{}",
        text(&out.stderr)
    );
    let out = cli
        .run(&["login", "stack", "--no-browser", "--timeout", "5"], None)
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("OAuth provider"),
        "{}",
        text(&out.stderr)
    );
    cli.ok(&["logout", &id]).await;
}

#[tokio::test]
async fn stytch_magic_link_from_the_command_line() {
    assert_keychain_available();
    let fake = StytchFake::start().await;
    let cli = Cli::default();
    cli.ok(&[
        "provider",
        "add",
        "stytch",
        "--kind",
        "stytch_b2b",
        "--project-id",
        &fake.project_id,
        "--public-token",
        &fake.public_token,
        "--base-url",
        &fake.base_url,
    ])
    .await;
    let (child, mut stderr) = cli.spawn(&[
        "login",
        "stytch",
        "--email",
        "alice@example.com",
        "--org",
        "acme",
    ]);
    let line = stderr.next_line().await.unwrap().unwrap();
    assert!(
        line.contains("Sent a sign-in link to alice@example.com"),
        "{line}"
    );
    let link = fake.latest_link_to("alice@example.com").await;
    let (status, _) = Browser::new().visit(&link).await;
    assert_eq!(
        status, 200,
        "the mailed link comes back to the waiting command"
    );
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let id = text(&out.stdout).trim().to_string();
    let orgs = cli.json(&["orgs", &id, "--json"]).await;
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "Acme" && o["current"] == true),
        "{orgs}"
    );
    let out = cli.run(&["token", &id, "--org", "globex"], None).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("mfa_required"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        cli.json(&["refresh", &id, "--json"]).await["rotated"],
        false
    );
    cli.ok(&["logout", &id]).await;
}

/// The Stack Auth fake, registered as provider "stack".
async fn stack_provider() -> (StackFake, Cli) {
    let fake = StackFake::start().await;
    let cli = Cli::default();
    cli.ok(&[
        "provider",
        "add",
        "stack",
        "--kind",
        "stack_auth",
        "--project-id",
        &fake.project_id,
        "--publishable-key",
        &fake.publishable_key,
        "--base-url",
        &fake.base_url,
    ])
    .await;
    (fake, cli)
}
