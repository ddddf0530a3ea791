//! Crash safety: `tessera` killed with SIGKILL at random moments of refreshes, one account's or
//! every account's as one batch (against the provider that rotates refresh tokens and detects
//! their reuse), sign-outs and sign-ins. After every kill: `tessera.json` parses, every account
//! is listed with a true status (a refresh works, or says "sign in again" with exit 3), no
//! keychain entry (of its own or on the shelf) belongs to no account, and no account points at
//! a missing entry.
//!
//! A kill between the provider's answer and the keychain write loses the sign-in: the provider
//! has consumed the old refresh token and the new one died with the process. With strict reuse
//! detection that is inherent. The test tells those kills apart (the provider consumed the
//! refresh token, yet the keychain still holds it) and fails on any other loss.
//!
//! `TESSERA_CRASH_ROUNDS` (default 300) and `TESSERA_CRASH_SEED` set the run; `scripts/soak`
//! runs a longer one.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cli, assert_keychain_available, text};
use serde_json::Value;
use tessera_testkit::{Browser, Idp, IdpOptions, Profile};

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Default, Debug)]
struct Tally {
    kills: u32,
    finished_before_kill: u32,
    killed_before_the_answer: u32,
    killed_after_the_keychain_write: u32,
    killed_in_the_window: u32,
    lost_in_the_window: u32,
}

/// Refresh tokens of `user` the provider has consumed (it has, once it received the request).
async fn consumed_refresh_tokens(idp: &Idp, user: &str) -> usize {
    idp.events()
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "refresh_token.consumed" && e["account_id"] == user)
        .count()
}

/// Runs `tessera ARGS` (on its own, with no agent), killing it with SIGKILL after `after`;
/// whether it was still running.
async fn kill_after(cli: &Cli, args: &[&str], after: Duration) -> bool {
    let mut child = cli
        .command(args)
        .env("TESSERA_AGENT", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(after).await;
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.start_kill().unwrap();
    }
    child.wait().await.unwrap();
    running
}

/// The account ids the keychain holds token sets for: entries of their own (own and
/// organization slots), and the shelf's.
async fn keychain_accounts(cli: &Cli) -> BTreeSet<String> {
    let out = tokio::process::Command::new("secret-tool")
        .args(["search", "--all", "service", "dev.tessera"])
        .output()
        .await
        .unwrap();
    let prefix = format!("{}/account/", cli.namespace());
    let mut ids: BTreeSet<String> = text(&out.stdout)
        .lines()
        .chain(text(&out.stderr).lines())
        .filter_map(|l| l.strip_prefix("attribute.username = "))
        .filter_map(|u| u.strip_prefix(&prefix))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
        .collect();
    if let Some(shelf) = cli.keychain("shelf").await {
        let shelf: Value = serde_json::from_str(&shelf).expect("a readable shelf");
        ids.extend(shelf["slots"].as_object().unwrap().keys().cloned());
    }
    ids
}

/// The invariants every kill must leave; returns the accounts.
async fn check(cli: &Cli, when: &str) -> Vec<Value> {
    let out = cli.run(&["accounts", "--json"], None).await;
    assert_eq!(out.status.code(), Some(0), "{when}: {}", text(&out.stderr));
    let accounts: Vec<Value> = serde_json::from_slice(&out.stdout).expect("accounts as JSON");
    let listed: BTreeSet<String> = accounts
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let stored = keychain_accounts(cli).await;
    assert!(
        stored.is_subset(&listed),
        "{when}: keychain entries of no account: {:?}",
        stored.difference(&listed).collect::<Vec<_>>()
    );
    assert!(
        listed.is_subset(&stored),
        "{when}: accounts without their entry: {:?}",
        listed.difference(&stored).collect::<Vec<_>>()
    );
    for a in &accounts {
        assert!(
            ["active", "needs_sign_in"].contains(&a["status"].as_str().unwrap()),
            "{when}: {a}"
        );
    }
    accounts
}

/// A sign-in whose callback reaches `tessera login`, which is killed after `after`.
async fn login_killed_after(cli: &Cli, user: &str, after: Duration) -> bool {
    let (mut child, mut stderr) = cli.spawn(&["login", "local", "--no-browser"]);
    let url = stderr.next_line().await.unwrap().expect("the URL");
    let browser = Browser::new();
    let callback = browser.login(&url, user).await;
    let visit = tokio::spawn(async move { browser.visit(&callback).await });
    tokio::time::sleep(after).await;
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.start_kill().unwrap();
    }
    child.wait().await.unwrap();
    let _ = visit.await;
    running
}

impl Tally {
    /// Where a kill fell: before the provider answered, after the keychain write, or in between.
    fn count(&mut self, answered: bool, persisted: bool) {
        match (answered, persisted) {
            (false, _) => self.killed_before_the_answer += 1,
            (true, true) => self.killed_after_the_keychain_write += 1,
            (true, false) => self.killed_in_the_window += 1,
        }
    }
}

/// Each account's stored refresh token and how many of its refresh tokens the provider
/// consumed so far.
async fn batch_state(cli: &Cli, idp: &Idp, accounts: &[Value]) -> Vec<(String, Value, usize)> {
    let mut state = Vec::new();
    for a in accounts {
        let id = a["id"].as_str().unwrap().to_string();
        let rt = cli.tokens(&id).await["refresh_token"].clone();
        let consumed = consumed_refresh_tokens(idp, a["subject"].as_str().unwrap()).await;
        state.push((id, rt, consumed));
    }
    state
}

/// After a kill: the account refreshes, or (only when killed in the window between the
/// provider's answer and the keychain write) says "sign in again" and is signed out.
async fn after_the_kill(
    cli: &Cli,
    id: &str,
    in_window: bool,
    when: &str,
    tally: &mut Tally,
    lost_otherwise: &mut Vec<String>,
) {
    let out = cli.run(&["refresh", id], None).await;
    match out.status.code() {
        Some(0) => {}
        Some(3) if in_window => {
            tally.lost_in_the_window += 1;
            cli.ok(&["logout", id, "--no-revoke"]).await;
        }
        other => {
            lost_otherwise.push(format!(
                "{when}: refresh of {id} after the kill exited {other:?}: {}",
                text(&out.stderr)
            ));
            cli.ok(&["logout", id, "--no-revoke"]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_leaves_a_consistent_store() {
    assert_keychain_available();
    let rounds: u32 = std::env::var("TESSERA_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("TESSERA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {rounds} rounds, TESSERA_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let idp = Idp::start(IdpOptions {
        profile: Profile::Rotating,
        ..IdpOptions::default()
    })
    .await;
    let cli = Cli::default();
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
    let users = ["alice", "bob"];
    for user in users {
        cli.login("local", user).await;
    }
    // Kill moments spread over a whole refresh, as long as one takes on this machine.
    let alice = check(&cli, "the start").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        cli.ok(&["refresh", &alice]).await;
    }
    let span = (started.elapsed().as_millis() as u64 / 3) * 5 / 4;
    eprintln!(
        "crash test: a refresh takes ~{} ms; kills within {span} ms",
        span * 4 / 5
    );
    let mut tally = Tally::default();
    let mut sign_ins_lost_otherwise = Vec::new();

    for round in 0..rounds {
        let user = users[rng.below(2) as usize];
        let after = Duration::from_millis(rng.below(span));
        let when = format!("round {round} (seed {seed})");
        let accounts = check(&cli, &when).await;
        if round % 5 == 4 && accounts.len() == users.len() {
            // Every account as one batch (the first one moves them onto the shelf).
            let before = batch_state(&cli, &idp, &accounts).await;
            if !kill_after(&cli, &["refresh", "--all"], after).await {
                tally.finished_before_kill += 1;
                continue;
            }
            tally.kills += 1;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let after_kill = batch_state(&cli, &idp, &accounts).await;
            check(&cli, &when).await;
            for ((id, rt_before, consumed_before), (_, rt_after, consumed_after)) in
                before.iter().zip(&after_kill)
            {
                let in_window = consumed_after > consumed_before && rt_after == rt_before;
                tally.count(consumed_after > consumed_before, rt_after != rt_before);
                after_the_kill(
                    &cli,
                    id,
                    in_window,
                    &when,
                    &mut tally,
                    &mut sign_ins_lost_otherwise,
                )
                .await;
            }
            continue;
        }
        let account = accounts
            .iter()
            .find(|a| a["subject"] == user)
            .map(|a| a["id"].as_str().unwrap().to_string());
        let Some(id) = account else {
            // Signed out (or its sign-in was killed): sign in again, killed at some moment.
            if login_killed_after(&cli, user, after).await {
                tally.kills += 1;
            }
            continue;
        };
        if round % 40 == 39 {
            if kill_after(&cli, &["logout", &id], after).await {
                tally.kills += 1;
            }
            continue;
        }
        let rt_before = cli.tokens(&id).await["refresh_token"].clone();
        let consumed_before = consumed_refresh_tokens(&idp, user).await;
        if !kill_after(&cli, &["refresh", &id], after).await {
            tally.finished_before_kill += 1;
            continue;
        }
        tally.kills += 1;
        // What the killed process had sent may still be at the provider for a moment.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let answered = consumed_refresh_tokens(&idp, user).await > consumed_before;
        let persisted = cli.tokens(&id).await["refresh_token"] != rt_before;
        tally.count(answered, persisted);
        check(&cli, &when).await;
        let in_window = answered && !persisted;
        after_the_kill(
            &cli,
            &id,
            in_window,
            &when,
            &mut tally,
            &mut sign_ins_lost_otherwise,
        )
        .await;
    }
    check(&cli, "the end").await;
    eprintln!("crash test: {tally:?}");
    assert!(
        sign_ins_lost_otherwise.is_empty(),
        "sign-ins lost outside the window between the provider's answer and the keychain \
         write: {sign_ins_lost_otherwise:#?}"
    );
    assert!(
        tally.kills > rounds / 4,
        "too few kills to mean anything: {tally:?}"
    );
}
