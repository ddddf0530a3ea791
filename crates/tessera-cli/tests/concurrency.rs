//! Concurrency: the desktop app's core and four `tessera` processes refresh one account at
//! once against the provider that rotates refresh tokens and revokes the whole grant when a
//! spent one comes back. Single-flight across threads and processes must hold for every
//! round: no `invalid_grant`, no revoked grant, and one refresh token alive at the end.
//!
//! `TESSERA_CONCURRENCY_ROUNDS` (default 1000, shared by the five refreshers) sets the run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Cli, assert_keychain_available, text};
use tessera_core::clock::SystemClock;
use tessera_core::http::HttpConfig;
use tessera_core::vault::KeyringStore;
use tessera_core::{Options, Tessera};
use tessera_testkit::{Idp, IdpOptions, Profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_and_four_processes_refresh_one_account_without_reusing_a_token() {
    assert_keychain_available();
    let rounds: u32 = std::env::var("TESSERA_CONCURRENCY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000);
    let idp = Idp::start(IdpOptions {
        profile: Profile::Rotating,
        ..IdpOptions::default()
    })
    .await;
    let cli = Arc::new(Cli::default());
    cli.ok(&[
        "provider",
        "add",
        "local",
        "--issuer",
        &idp.issuer,
        "--client-id",
        "tessera-public",
    ])
    .await;
    let id = cli.login("local", "alice").await;
    let app = Arc::new(
        Tessera::open(Options {
            data_dir: cli.dir.path().to_path_buf(),
            store: Arc::new(KeyringStore::new()),
            clock: Arc::new(SystemClock),
            http: HttpConfig::default(),
        })
        .unwrap(),
    );

    let left = Arc::new(AtomicU32::new(rounds));
    let take = |left: &AtomicU32| {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (cli, id, left) = (cli.clone(), id.clone(), left.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while take(&left) {
                let mut c = cli.command(&["refresh", &id]);
                c.env("TESSERA_AGENT", "off");
                let out = c.output().await.unwrap();
                if !out.status.success() {
                    failures.push(text(&out.stderr));
                }
            }
            failures
        }));
    }
    let (app_id, app_left) = (id.clone(), left.clone());
    workers.push(tokio::spawn(async move {
        let mut failures = Vec::new();
        while take(&app_left) {
            if let Err(e) = app.refresh(&app_id).await {
                failures.push(format!("app: {e} [{}]", e.code()));
            }
        }
        failures
    }));
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(failures.is_empty(), "refreshes failed: {failures:#?}");

    let events = idp.events().await;
    let events = events.as_array().unwrap();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count("grant.revoked"), 0, "a spent refresh token came back");
    assert_eq!(count("grant.error"), 0, "the provider refused a refresh");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "grant.success" && e["grant_type"] == "refresh_token")
            .count(),
        rounds as usize,
        "every round refreshed once"
    );
    // The one refresh token alive is the one in the keychain: it still works, once.
    let stored = cli.tokens(&id).await["refresh_token"].clone();
    cli.ok(&["refresh", &id]).await;
    assert_ne!(cli.tokens(&id).await["refresh_token"], stored);
}
