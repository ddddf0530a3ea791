//! Regression tests for the account transactions of issue 7: every write to an account's
//! keychain slots or metadata (sign-in, re-sign-in, refresh, sign-out) and every provider
//! add/remove keeps its promise when it fails half-way or meets another writer. Two `Tessera`
//! instances on one data directory and keychain stand in for the desktop app and the command
//! line; the real `tests/idp` provider holds one side of each race (`Idp::stall`, released
//! explicitly) or answers a refresh with a hostile ID token.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::vault::SecretStore;
use tessera_core::{Account, AccountStatus, ClientAuth, ProviderConfig, SecretString, TokenKind};
use tessera_testkit::{Idp, Profile};

mod common;
use common::{Env, env};

const TOKEN_PATH: &str = "/token";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// How long the second side of a race may take while the first is held at the provider. A
/// correct engine may make it wait for the held one (a lock); the grace then ends and the held
/// request is released. It never decides what is asserted: every interleaving must end in the
/// promised state.
const GRACE: Duration = Duration::from_secs(2);

/// Longer than any request may take (the core's HTTP client gives up after 30 s).
const DEADLOCK: Duration = Duration::from_secs(60);

/// Runs `first` until its request to `path` is held (armed with [`Idp::stall`]), runs `second`
/// until it finishes or [`GRACE`] passes, releases the held request and returns both results.
async fn race<A, B>(
    idp: &Idp,
    path: &str,
    first: impl Future<Output = A> + Send + 'static,
    second: impl Future<Output = B> + Send + 'static,
) -> (A, B)
where
    A: Send + 'static,
    B: Send + 'static,
{
    let first = tokio::spawn(first);
    idp.held(path).await;
    let mut second = tokio::spawn(second);
    let early = tokio::time::timeout(GRACE, &mut second).await.ok();
    idp.release(path).await;
    let both = async {
        let first = first.await.expect("first side of the race panicked");
        let second = match early {
            Some(done) => done,
            None => second.await,
        }
        .expect("second side of the race panicked");
        (first, second)
    };
    tokio::time::timeout(DEADLOCK, both)
        .await
        .expect("the two sides of the race did not both finish: a deadlock")
}

fn sha256(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The `nonce` parameter of an authorization URL.
fn nonce_of(authorization_url: &str) -> String {
    url::Url::parse(authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.into_owned())
        .expect("the authorization URL carries a nonce")
}

/// While alive, `tessera.json` cannot be written, even by root: a directory stands where
/// `fsutil::write_atomic` creates the temporary file it renames over the state file.
struct StateUnwritable(PathBuf);

impl StateUnwritable {
    fn new(env: &Env) -> Self {
        let path = env
            .dir
            .path()
            .join(format!(".tessera.json.{}.tmp", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        StateUnwritable(path)
    }
}

impl Drop for StateUnwritable {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A provider's client secret in the keychain (the vault's layout: `NAMESPACE/provider/NAME`).
fn provider_secret(env: &Env, name: &str) -> Option<String> {
    let state: Value = serde_json::from_slice(&env.state_file()).unwrap();
    let namespace = state["namespace"].as_str().unwrap();
    env.store
        .get(&format!("{namespace}/provider/{name}"))
        .unwrap()
        .map(|s| s.expose_secret().to_string())
}

const WORK_SECRET: &str = "basic-secret";

/// The confidential client `tessera-basic` as provider `work` (secret not yet stored).
fn work_provider(env: &Env) -> ProviderConfig {
    let mut config = ProviderConfig::new("work", &env.idp.issuer, "tessera-basic");
    config.client_auth = ClientAuth::ClientSecretBasic;
    config
}

/// A provider `work` registered with its secret in the keychain, and no account.
async fn env_with_work() -> Env {
    let env = env(Profile::Plain).await;
    env.tessera
        .add_provider(work_provider(&env), Some(SecretString::new(WORK_SECRET)))
        .await
        .unwrap();
    env
}

#[tokio::test]
async fn an_access_token_whose_refreshed_id_token_fails_verification_is_never_handed_out() {
    let env = env(Profile::Rotating).await;
    let account = env.sign_in("alice").await;
    for kind in ["id_token_bad_signature", "id_token_other_sub"] {
        env.idp.sabotage(TOKEN_PATH, kind).await;
        let err = env.tessera.refresh(&account.id).await.unwrap_err();
        assert_eq!(err.code(), "token_rejected", "{kind}: {err}");
        let events = env.idp.events().await;
        let rejected = events
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["event"] == "test.id_token_forged" && e["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind}: the provider forged no ID token"))
            ["access_token_sha256"]
            .as_str()
            .unwrap()
            .to_string();

        let issued = env
            .tessera
            .access_token(&account.id, 30, false)
            .await
            .unwrap_or_else(|e| panic!("{kind}: no access token after the rejected refresh: {e}"));
        assert_ne!(
            sha256(issued.token.expose_secret()),
            rejected,
            "{kind}: access_token handed out (refreshed: {}) the access token of the refresh \
             whose ID token was rejected",
            issued.refreshed
        );
        let id_token = env
            .tessera
            .claims(&account.id, TokenKind::IdToken)
            .await
            .unwrap();
        assert!(id_token.verified, "{kind}: {:?}", id_token.checks);

        env.tessera.refresh(&account.id).await.unwrap_or_else(|e| {
            panic!("{kind}: the rotated refresh token of the rejected answer was not kept: {e}")
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_out_during_a_refresh_leaves_no_token_of_the_account_behind() {
    let env = env(Profile::Rotating).await;
    let account = env.sign_in("alice").await;
    let (app, cli) = (env.tessera.clone(), env.other_process());
    let (a, b) = (account.id.clone(), account.id.clone());

    env.idp.stall(TOKEN_PATH).await;
    // Local sign-out: revoking at the provider would kill the grant the held refresh uses.
    let (_refreshed, signed_out) = race(
        &env.idp,
        TOKEN_PATH,
        async move { app.refresh(&a).await },
        async move { cli.sign_out(&b, false).await },
    )
    .await;

    signed_out.expect("the sign-out");
    assert!(env.tessera.accounts().unwrap().is_empty());
    assert!(
        env.stored(&account.id).is_none(),
        "the refresh wrote its (rotated) tokens into the keychain of the signed-out account"
    );
    assert!(env.store.is_empty(), "no keychain entry may remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_completing_during_a_refresh_keeps_its_tokens() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let (app, cli) = (env.tessera.clone(), env.other_process());
    let start = cli
        .start_sign_in("local", DEEP_LINK_REDIRECT, &[])
        .await
        .unwrap();
    let nonce = nonce_of(&start.authorization_url);
    let callback = env.browser.login(&start.authorization_url, "alice").await;
    let id = account.id.clone();

    env.idp.stall(TOKEN_PATH).await;
    let (_refreshed, signed_in) = race(
        &env.idp,
        TOKEN_PATH,
        async move { app.refresh(&id).await },
        async move { cli.complete_sign_in(&callback).await },
    )
    .await;

    assert_eq!(signed_in.expect("the sign-in").id, account.id);
    let id_token = env.tessera.id_token(&account.id, 0, false).await.unwrap();
    assert_eq!(
        jwt_claims(id_token.token.expose_secret())["nonce"].as_str(),
        Some(nonce.as_str()),
        "the stored tokens are not the sign-in's: the refresh overwrote them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_adding_one_provider_keep_the_winners_secret() {
    let env = env(Profile::Plain).await;
    let (app, cli) = (env.tessera.clone(), env.other_process());
    let (a, b) = (work_provider(&env), work_provider(&env));

    env.idp.stall(DISCOVERY_PATH).await;
    let (by_app, by_cli) = race(
        &env.idp,
        DISCOVERY_PATH,
        async move {
            app.add_provider(a, Some(SecretString::new(WORK_SECRET)))
                .await
        },
        async move {
            cli.add_provider(b, Some(SecretString::new("cli-secret")))
                .await
        },
    )
    .await;

    let winner = match (&by_app, &by_cli) {
        (Ok(_), Err(e)) => {
            assert_eq!(e.code(), "provider_exists", "{e}");
            WORK_SECRET
        }
        (Err(e), Ok(_)) => {
            assert_eq!(e.code(), "provider_exists", "{e}");
            "cli-secret"
        }
        other => panic!("exactly one add must succeed: {other:?}"),
    };
    assert_eq!(
        provider_secret(&env, "work").as_deref(),
        Some(winner),
        "the keychain must hold the secret of the add that succeeded"
    );
}

#[tokio::test]
async fn a_re_sign_in_whose_state_write_fails_keeps_the_account_and_its_tokens() {
    let env = env(Profile::Plain).await;
    let account = env.sign_in("alice").await;
    let before = env
        .tessera
        .access_token(&account.id, 30, false)
        .await
        .unwrap();
    let callback = env.callback("local", "alice").await;

    let unwritable = StateUnwritable::new(&env);
    let err = env.tessera.complete_sign_in(&callback).await.unwrap_err();
    drop(unwritable);
    assert_eq!(err.code(), "storage", "{err}");

    let kept = env.tessera.account(&account.id).unwrap();
    assert_eq!(kept.status, AccountStatus::Active);
    let issued = env
        .tessera
        .access_token(&account.id, 30, false)
        .await
        .unwrap_or_else(|e| panic!("the failed re-sign-in lost the account's tokens: {e}"));
    assert_eq!(
        issued.token.expose_secret(),
        before.token.expose_secret(),
        "the account's previous tokens are not the ones kept"
    );
    env.tessera.refresh(&account.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_provider_while_a_sign_in_completes_leaves_no_orphan() {
    let env = env_with_work().await;
    let (app, cli) = (env.tessera.clone(), env.other_process());
    let callback = env.callback("work", "alice").await;

    env.idp.stall(TOKEN_PATH).await;
    let (signed_in, removed) = race(
        &env.idp,
        TOKEN_PATH,
        async move { app.complete_sign_in(&callback).await },
        async move { cli.remove_provider("work").await },
    )
    .await;

    let providers: Vec<String> = env
        .tessera
        .providers()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let accounts = env.tessera.accounts().unwrap();
    let outcome = format!("sign-in: {signed_in:?}; removal: {removed:?}");
    for a in &accounts {
        assert!(
            providers.contains(&a.provider),
            "account {} belongs to provider \"{}\", which is gone ({outcome})",
            a.id,
            a.provider
        );
    }
    if providers.iter().any(|p| p == "work") {
        assert_eq!(
            provider_secret(&env, "work").as_deref(),
            Some(WORK_SECRET),
            "the provider is kept without its secret ({outcome})"
        );
    } else {
        assert!(
            env.stored(&Account::id_for("work", "alice")).is_none(),
            "a keychain entry is left for an account of the removed provider ({outcome})"
        );
    }
}

#[tokio::test]
async fn a_provider_removal_whose_state_write_fails_keeps_its_secret() {
    let env = env_with_work().await;

    let unwritable = StateUnwritable::new(&env);
    let err = env.tessera.remove_provider("work").await.unwrap_err();
    drop(unwritable);
    assert_eq!(err.code(), "storage", "{err}");

    assert!(env.tessera.provider("work").is_ok());
    assert_eq!(
        provider_secret(&env, "work").as_deref(),
        Some(WORK_SECRET),
        "the failed removal deleted the secret of the provider it kept"
    );
}

/// Marks the account as a process that died in the middle of `write` leaves it.
fn interrupt(env: &Env, account_id: &str, write: &str, keep_entry: bool) {
    let path = env.dir.path().join("tessera.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for a in state["accounts"].as_array_mut().unwrap() {
        if a["id"] == account_id {
            a["pending"] = write.into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    if !keep_entry {
        env.store
            .delete(&env.tessera.keychain_key(account_id))
            .unwrap();
    }
}

#[tokio::test]
async fn the_next_process_finishes_or_undoes_a_dead_processs_sign_in_or_sign_out() {
    let env = env(Profile::Plain).await;
    let alice = env.sign_in("alice").await;

    // Died after writing the record, before the keychain: the sign-in is undone.
    interrupt(&env, &alice.id, "sign_in", false);
    assert!(env.other_process().accounts().unwrap().is_empty());

    // Died after the keychain, before completing the record: the sign-in is completed.
    let alice = env.sign_in("alice").await;
    interrupt(&env, &alice.id, "sign_in", true);
    let next = env.other_process();
    let accounts = next.accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].pending, None);
    next.access_token(&alice.id, 0, true).await.unwrap();

    // Died while signing out: the sign-out is completed, entries and record gone.
    interrupt(&env, &alice.id, "sign_out", true);
    assert!(env.other_process().accounts().unwrap().is_empty());
    assert!(env.stored(&alice.id).is_none());
    assert!(env.store.is_empty(), "no entry left behind");
}
