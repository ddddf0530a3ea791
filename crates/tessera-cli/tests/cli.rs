//! The `tessera` binary end to end: the real OpenID provider of `tests/idp`, the real
//! Secret Service (run through `scripts/test`, which starts an unlocked gnome-keyring in a
//! private D-Bus session), and a scripted browser.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tessera_testkit::{Browser, Idp, IdpOptions, Profile, client_pkjwt_pem};
use tokio::io::AsyncWriteExt;

mod common;
use common::{Cli, assert_keychain_available, text};

struct Env {
    idp: Idp,
    cli: Cli,
}

async fn env(profile: Profile) -> Env {
    let env = Env {
        idp: Idp::start(IdpOptions {
            profile,
            ..Default::default()
        })
        .await,
        cli: Cli::default(),
    };
    let out = env
        .run(
            &[
                "provider",
                "add",
                "local",
                "--issuer",
                &env.idp.issuer.clone(),
                "--client-id",
                "tessera-public",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    env
}

impl Env {
    async fn refresh_at_idp(&self, refresh_token: &str, client: &str) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.idp.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client),
            ])
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}

impl std::ops::Deref for Env {
    type Target = Cli;

    fn deref(&self) -> &Cli {
        &self.cli
    }
}

#[tokio::test]
async fn sign_in_inspect_refresh_and_sign_out_with_the_real_keychain() {
    assert_keychain_available();
    let env = env(Profile::Plain).await;
    let providers = env.json(&["provider", "list", "--json"]).await;
    assert_eq!(providers[0]["name"], "local");

    let id = env.login("local", "alice").await;
    let accounts = env.json(&["accounts", "--json"]).await;
    let account = &accounts[0];
    assert_eq!(account["id"], id.as_str());
    assert_eq!(
        (account["provider"].as_str(), account["subject"].as_str()),
        (Some("local"), Some("alice"))
    );
    assert_eq!(
        (account["email"].as_str(), account["status"].as_str()),
        (Some("alice@example.com"), Some("active"))
    );
    assert_eq!(account["orgs"], serde_json::json!(["acme", "globex"]));
    assert_eq!(env.ok(&["accounts"]).await.lines().count(), 1);

    let stored = env.tokens(&id).await;
    let refresh_token = stored["refresh_token"]
        .as_str()
        .expect("the refresh token is in the keychain")
        .to_string();
    assert!(
        env.files_contain(&refresh_token).is_empty(),
        "no file holds the refresh token"
    );
    assert!(
        env.files_contain(stored["access_token"].as_str().unwrap())
            .is_empty()
    );

    assert_eq!(
        env.ok(&["token", "alice@example.com"]).await.trim(),
        stored["access_token"].as_str().unwrap()
    );
    let token = env.json(&["token", &id, "--json"]).await;
    assert_eq!(token["refreshed"], false);
    let id_token = env.ok(&["token", "alice", "--id-token"]).await;
    assert_eq!(id_token.trim(), stored["id_token"].as_str().unwrap());

    let claims = env.json(&["claims", &id, "--id-token", "--json"]).await;
    assert_eq!(claims["verified"], true, "{claims}");
    let human = env.ok(&["claims", &id, "--id-token"]).await;
    assert!(
        human.contains("Verified.") && human.contains("✓ signature") && human.contains("Issuer"),
        "{human}"
    );
    let opaque = env.json(&["claims", &id, "--json"]).await;
    assert_eq!(opaque["format"], "opaque");

    let refreshed = env.json(&["refresh", &id, "--json"]).await;
    assert_eq!(refreshed["rotated"], false);
    let forced = env.json(&["token", &id, "--refresh", "--json"]).await;
    assert_eq!(forced["refreshed"], true);
    assert_ne!(forced["token"], token["token"]);
    assert_eq!(
        env.json(&["userinfo", &id]).await["email"],
        "alice@example.com"
    );

    let out = env.run(&["logout", &id], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("revoked"));
    assert!(
        env.keychain(&format!("account/{id}")).await.is_none(),
        "the keychain entry is gone"
    );
    assert_eq!(
        env.refresh_at_idp(&refresh_token, "tessera-public").await["error"],
        "invalid_grant"
    );
    assert_eq!(
        env.json(&["accounts", "--json"]).await,
        serde_json::json!([])
    );
    env.ok(&["provider", "remove", "local"]).await;
}

#[tokio::test]
async fn confidential_clients_keep_their_credentials_in_the_keychain() {
    assert_keychain_available();
    let env = env(Profile::Plain).await;
    let issuer = env.idp.issuer.clone();
    let add = [
        "provider",
        "add",
        "basic",
        "--issuer",
        &issuer,
        "--client-id",
        "tessera-basic",
        "--client-secret-stdin",
    ];
    let out = env.run(&add, Some("basic-secret\n")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let add = [
        "provider",
        "add",
        "post",
        "--issuer",
        &issuer,
        "--client-id",
        "tessera-post",
        "--client-secret-stdin",
        "--auth",
        "client_secret_post",
    ];
    assert_eq!(
        env.run(&add, Some("post-secret")).await.status.code(),
        Some(0)
    );
    let key_file = env
        .dir
        .path()
        .join("..")
        .join(format!("pkjwt-{}.pem", std::process::id()));
    std::fs::write(&key_file, client_pkjwt_pem()).unwrap();
    let key_path = key_file.to_str().unwrap();
    env.ok(&[
        "provider",
        "add",
        "pkjwt",
        "--issuer",
        &issuer,
        "--client-id",
        "tessera-pkjwt",
        "--private-key-file",
        key_path,
    ])
    .await;
    std::fs::remove_file(&key_file).unwrap();

    assert_eq!(
        env.keychain("provider/basic").await.as_deref(),
        Some("basic-secret")
    );
    assert!(
        env.files_contain("basic-secret").is_empty() && env.files_contain("post-secret").is_empty()
    );
    assert!(env.files_contain("PRIVATE KEY").is_empty());

    for (provider, client) in [
        ("basic", "tessera-basic"),
        ("post", "tessera-post"),
        ("pkjwt", "tessera-pkjwt"),
    ] {
        let id = env.login(provider, "bob").await;
        let out = env.json(&["refresh", &id, "--json"]).await;
        assert_eq!(out["account_id"], id.as_str());
        let rt = env.tokens(&id).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        env.ok(&["logout", &id]).await;
        let introspected = reqwest::Client::new()
            .post(format!("{issuer}/token/introspection"))
            .basic_auth("tessera-basic", Some("basic-secret"))
            .form(&[("token", rt.as_str())])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(
            introspected["active"], false,
            "{client}'s refresh token was revoked"
        );
    }
}

#[tokio::test]
async fn device_flow_from_the_command_line() {
    assert_keychain_available();
    let env = env(Profile::Plain).await;
    let (child, mut stderr) = env.spawn(&["login", "local", "--device"]);
    let line = stderr.next_line().await.unwrap().unwrap();
    let rest = line
        .strip_prefix("To sign in, visit ")
        .unwrap_or_else(|| panic!("{line}"));
    let (uri, code) = rest.split_once(" and enter the code ").unwrap();
    Browser::new().approve_device(uri, code, "bob").await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(
        env.json(&["accounts", "--json"]).await[0]["email"],
        "bob@example.com"
    );
    assert!(env.tokens(&id).await["refresh_token"].is_string());
}

#[tokio::test]
async fn concurrent_refreshing_processes_never_reuse_a_rotating_refresh_token() {
    assert_keychain_available();
    let env = env(Profile::Rotating).await;
    let id = env.login("local", "alice").await;
    let first = env.tokens(&id).await["refresh_token"].clone();
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.command(&["token", &id, "--refresh"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs = Vec::new();
    for child in children {
        outputs.push(child.wait_with_output().await.unwrap());
    }
    for out in &outputs {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let mut tokens: Vec<String> = outputs.iter().map(|o| text(&o.stdout)).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        4,
        "each process refreshed in turn and got its own token"
    );
    let events = env.idp.events().await.to_string();
    assert!(
        !events.contains("grant.revoked") && !events.contains("grant.error"),
        "{events}"
    );
    assert_ne!(env.tokens(&id).await["refresh_token"], first);
    env.ok(&["refresh", &id]).await;
}

#[tokio::test]
async fn invalid_grant_exits_3_and_keeps_the_account() {
    assert_keychain_available();
    let env = env(Profile::Rotating).await;
    let id = env.login("local", "alice").await;
    let stored = env.tokens(&id).await;
    let rt = stored["refresh_token"].as_str().unwrap();
    assert!(
        env.refresh_at_idp(rt, "tessera-public").await["access_token"].is_string(),
        "someone else used it"
    );
    let out = env.run(&["token", &id, "--refresh"], None).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let message = text(&out.stderr);
    assert!(
        message.contains("sign in again") && message.contains("[needs_sign_in]"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one line on stderr");
    assert_eq!(
        env.json(&["accounts", "--json"]).await[0]["status"],
        "needs_sign_in"
    );
    assert_eq!(
        env.tokens(&id).await,
        stored,
        "nothing deleted from the keychain"
    );
    assert_eq!(env.run(&["token", &id], None).await.status.code(), Some(3));
    assert_eq!(
        env.login("local", "alice").await,
        id,
        "signing in again revives the account"
    );
    env.ok(&["token", &id, "--refresh"]).await;
}

#[tokio::test]
async fn provider_supplied_text_cannot_drive_the_terminal() {
    assert_keychain_available();
    let env = env(Profile::Plain).await;
    let id = env.login("local", "alice").await;
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m";
    let path = env.dir.path().join("tessera.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let account = &mut state["accounts"][0];
    account["email"] = format!("alice{hostile}@example.com").into();
    account["orgs"] = serde_json::json!([format!("org{hostile}")]);
    account["org_names"] = serde_json::json!({ format!("org{hostile}"): format!("Acme{hostile}") });
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let controls = |t: &str| t.contains(|c: char| c.is_control() && c != '\n' && c != '\t');
    for args in [
        vec!["accounts"],
        vec!["accounts", "--json"],
        vec!["orgs", &id],
        vec!["orgs", &id, "--json"],
    ] {
        let out = env.ok(&args).await;
        assert!(out.contains("pwned"), "{args:?}: {out:?}");
        assert!(!controls(&out), "{args:?}: {out:?}");
    }
    let out = env.run(&["token", &format!("bob{hostile}")], None).await;
    let err = text(&out.stderr);
    assert!(err.contains("[unknown_account]"), "{err:?}");
    assert!(!controls(err.trim_end()), "{err:?}");
}

#[tokio::test]
async fn exit_codes_and_messages() {
    assert_keychain_available();
    let env = env(Profile::Plain).await;
    let out = env.run(&["token", "nobody@example.com"], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("[unknown_account]"));
    assert_eq!(
        env.run(&["login"], None).await.status.code(),
        Some(2),
        "usage error"
    );
    let out = env
        .run(
            &[
                "provider",
                "add",
                "x",
                "--issuer",
                "http://example.com",
                "--client-id",
                "c",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = env
        .run(
            &[
                "provider",
                "add",
                "dead",
                "--issuer",
                &dead,
                "--client-id",
                "c",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot reach"));

    let id = env.login("local", "alice").await;
    let before = std::fs::read(env.dir.path().join("tessera.json")).unwrap();
    let mut no_keychain = env.command(&["token", &id, "--refresh"]);
    no_keychain
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("TESSERA_AGENT", "off")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let out = no_keychain.output().await.unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("[keychain]"));
    let mut no_keychain = env.command(&[
        "provider",
        "add",
        "basic",
        "--issuer",
        &env.idp.issuer,
        "--client-id",
        "tessera-basic",
        "--client-secret-stdin",
    ]);
    no_keychain
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = no_keychain.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"basic-secret")
        .await
        .unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(5));
    assert_eq!(
        std::fs::read(env.dir.path().join("tessera.json")).unwrap(),
        before,
        "nothing changed"
    );

    for command in [
        &["--help"][..],
        &["provider", "add", "--help"],
        &["login", "--help"],
        &["token", "--help"],
        &["claims", "--help"],
        &["logout", "--help"],
    ] {
        let out = env.run(command, None).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("Usage:"));
    }
}

#[tokio::test]
async fn token_is_served_by_an_agent_started_on_demand() {
    assert_keychain_available();
    let env = env(Profile::Rotating).await;
    let id = env.login("local", "alice").await;
    let socket = tessera_core::agent::socket_path(env.dir.path());
    assert!(!socket.exists());
    let first = env.ok(&["token", &id]).await;
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(socket.exists(), "the first token started an agent");
    // The agent answers without the caller reaching the keychain itself.
    let mut asked = env.command(&["token", &id, "--json"]);
    asked
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = asked.output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["account_id"], Value::from(id.clone()));
    assert_eq!(answer["token"].as_str().unwrap(), first.trim());

    // Refreshes through the agent and directly, at once, on the provider that revokes a
    // grant whose spent refresh token comes back: single-flight holds across both.
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut c = env.command(&["token", &id, "--refresh"]);
            if i % 2 == 0 {
                c.env("TESSERA_AGENT", "off");
            }
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    env.ok(&["refresh", &id]).await;
    let events = env.idp.events().await.to_string();
    assert!(
        !events.contains("grant.revoked"),
        "a refresh token was reused: {events}"
    );

    // Errors keep their exit codes through the agent.
    let out = env.run(&["token", "nobody"], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("[unknown_account]"));
}

#[tokio::test]
async fn refresh_all_refreshes_every_account_at_once() {
    assert_keychain_available();
    let env = env(Profile::Rotating).await;
    let alice = env.login("local", "alice").await;
    let bob = env.login("local", "bob").await;
    let before = (
        env.tokens(&alice).await["refresh_token"].clone(),
        env.tokens(&bob).await["refresh_token"].clone(),
    );
    let socket = tessera_core::agent::socket_path(env.dir.path());
    let rows = env.json(&["refresh", "--all", "--json"]).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["ok"] == true && r["rotated"] == true),
        "{rows:?}"
    );
    let after = (
        env.tokens(&alice).await["refresh_token"].clone(),
        env.tokens(&bob).await["refresh_token"].clone(),
    );
    assert_ne!(after.0, before.0);
    assert_ne!(after.1, before.1);

    // It started an agent, which answers the next one without the caller reaching the
    // keychain itself; a direct one at the same time waits for it (or it for that one).
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(socket.exists(), "refresh --all started an agent");
    let mut through_agent = env.command(&["refresh", "--all", "--json"]);
    through_agent
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut direct = env.command(&["refresh", "--all", "--json"]);
    direct
        .env("TESSERA_AGENT", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (through_agent, direct) = (through_agent.spawn().unwrap(), direct.spawn().unwrap());
    for out in [through_agent, direct] {
        let out = out.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            rows.as_array()
                .unwrap()
                .iter()
                .all(|r| r["ok"] == true && r["rotated"] == true),
            "{rows}"
        );
    }
    assert_ne!(env.tokens(&alice).await["refresh_token"], after.0);
    let events = env.idp.events().await.to_string();
    assert!(
        !events.contains("grant.revoked"),
        "a refresh token was reused: {events}"
    );

    let out = env.run(&["refresh", "--all", &alice], None).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an account and --all exclude each other"
    );
}
