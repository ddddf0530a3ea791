//! Keychain faults: locked (the core's `MemoryStore::set_locked`), gone, or failing at one
//! write or delete in the middle of an operation. Each: a `keychain` error, no plaintext
//! fallback (no issued secret in any file), nothing half-written, and the rotated refresh
//! token kept wherever a place for it exists.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::clock::ShiftedClock;
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::vault::{MemoryStore, SecretStore};
use tessera_core::{
    AccountStatus, ClientAuth, ErrorKind, Options, ProviderConfig, SecretString, Tessera,
};
use tessera_testkit::ScriptedIdp;
use tessera_testkit::scripted::{CLIENT_ID, Refresh};

use crate::adversary::{PROVIDER, Rig, leaked_in, outcome, rig_with};

fn state_file(rig: &Rig) -> Vec<u8> {
    std::fs::read(rig.dir.path().join("tessera.json")).unwrap()
}

fn keychain_error(what: &str, got: Result<tessera_core::Error, String>) {
    match got {
        Ok(e) => {
            assert_eq!(e.code(), "keychain", "{what}: {e}");
            assert_eq!(e.kind(), ErrorKind::Keychain, "{what}");
        }
        Err(how) => panic!("{what}: expected a keychain error, but it {how}"),
    }
}

#[tokio::test]
async fn a_locked_keychain_is_a_clear_error_and_nothing_falls_back_to_a_file() {
    let idp = ScriptedIdp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::default();
    let tessera = Arc::new(
        Tessera::open(Options {
            data_dir: dir.path().to_path_buf(),
            store: Arc::new(store.clone()),
            clock: Arc::new(ShiftedClock::default()),
            http: HttpConfig::default(),
        })
        .unwrap(),
    );
    tessera
        .add_provider(ProviderConfig::new(PROVIDER, &idp.issuer, CLIENT_ID), None)
        .await
        .unwrap();
    let start = tessera
        .start_sign_in(PROVIDER, DEEP_LINK_REDIRECT, &[])
        .await
        .unwrap();
    let alice = tessera
        .complete_sign_in(&idp.authorize(&start.authorization_url, "alice"))
        .await
        .unwrap();
    let key = tessera.keychain_key(&alice.id);
    let stored = store.get(&key).unwrap().unwrap();
    let state = std::fs::read(dir.path().join("tessera.json")).unwrap();
    let token_requests = idp.hits("/token");

    store.set_locked(true);
    let start = tessera
        .start_sign_in(PROVIDER, DEEP_LINK_REDIRECT, &[])
        .await
        .unwrap();
    let bob = idp.authorize(&start.authorization_url, "bob");
    let t = tessera.clone();
    keychain_error(
        "sign-in",
        outcome(async move { t.complete_sign_in(&bob).await }).await,
    );
    let before_refresh = idp.hits("/token");
    let t = tessera.clone();
    keychain_error(
        "refresh",
        outcome(async move { t.refresh("alice").await }).await,
    );
    assert_eq!(
        idp.hits("/token"),
        before_refresh,
        "no refresh without a keychain to keep its answer"
    );
    let t = tessera.clone();
    keychain_error(
        "token",
        outcome(async move { t.access_token("alice", 30, false).await }).await,
    );
    let t = tessera.clone();
    keychain_error(
        "sign-out",
        outcome(async move { t.sign_out("alice", true).await }).await,
    );
    let t = tessera.clone();
    let mut config = ProviderConfig::new("confidential", &idp.issuer, "tessera-basic");
    config.client_auth = ClientAuth::ClientSecretBasic;
    let secret = SecretString::new("basic-secret-0123456789");
    keychain_error(
        "a provider with a secret",
        outcome(async move { t.add_provider(config, Some(secret)).await }).await,
    );
    store.set_locked(false);

    assert_eq!(
        std::fs::read(dir.path().join("tessera.json")).unwrap(),
        state
    );
    assert_eq!(store.len(), 1, "only alice's entry");
    assert_eq!(store.get(&key).unwrap().unwrap(), stored);
    assert_eq!(
        idp.hits("/token"),
        token_requests,
        "bob's code was not spent without a keychain to keep its answer"
    );
    let mut secrets = idp.issued();
    secrets.push("basic-secret-0123456789".into());
    assert_eq!(leaked_in(dir.path(), &secrets), Vec::<String>::new());
    assert!(idp.refresh_token_alive(
        serde_json::from_str::<serde_json::Value>(stored.expose_secret()).unwrap()["refresh_token"]
            .as_str()
            .unwrap()
    ));
    tessera.refresh("alice").await.unwrap();
}

/// The rotated refresh token is written first, in a write of its own: when the second write
/// (the new access token) fails, the keychain holds the new refresh token with the old access
/// token, a whole set; the account's record still describes that access token.
#[tokio::test]
async fn a_keychain_failing_at_the_second_write_of_a_refresh_keeps_the_rotated_token() {
    let rig = rig_with(Refresh::Rotating, HttpConfig::default()).await;
    let alice = rig.sign_in("alice").await;
    let old = rig.stored(&alice.id).unwrap();
    let state = state_file(&rig);
    rig.keychain.fail_writes(&[2]);
    let t = rig.tessera.clone();
    keychain_error(
        "refresh",
        outcome(async move { t.refresh("alice").await }).await,
    );
    rig.keychain.heal();
    let now = rig.stored(&alice.id).unwrap();
    let rotated = now["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, old["refresh_token"].as_str().unwrap());
    assert!(
        rig.idp.refresh_token_alive(rotated),
        "the stored token is the live one"
    );
    assert_eq!(now["access_token"], old["access_token"], "the set is whole");
    assert_eq!(
        state_file(&rig),
        state,
        "the record still matches the stored access token"
    );
    assert_eq!(rig.leaked(), Vec::<String>::new());
    let refreshed = rig.tessera.refresh("alice").await.unwrap();
    assert!(refreshed.rotated);
}

/// The one window: the provider rotated the refresh token, and the keychain refuses the very
/// write that would keep it. Without a plaintext fallback there is nowhere to put it; the
/// stored set stays whole (the old, now spent, token), and the next refresh says "sign in
/// again" (exit 3) and deletes nothing.
#[tokio::test]
async fn a_keychain_failing_at_the_first_write_of_a_refresh_leaves_the_set_whole() {
    let rig = rig_with(Refresh::Rotating, HttpConfig::default()).await;
    let alice = rig.sign_in("alice").await;
    let old = rig.stored(&alice.id).unwrap();
    let state = state_file(&rig);
    rig.keychain.fail_writes(&[1]);
    let t = rig.tessera.clone();
    keychain_error(
        "refresh",
        outcome(async move { t.refresh("alice").await }).await,
    );
    rig.keychain.heal();
    assert_eq!(rig.stored(&alice.id).unwrap(), old, "nothing half-written");
    assert_eq!(state_file(&rig), state);
    assert_eq!(rig.leaked(), Vec::<String>::new());
    let err = rig.tessera.refresh("alice").await.unwrap_err();
    assert_eq!(err.code(), "needs_sign_in", "{err}");
    assert_eq!(
        rig.tessera.account("alice").unwrap().status,
        AccountStatus::NeedsSignIn
    );
    assert_eq!(rig.stored(&alice.id).unwrap(), old, "nothing deleted");
}

#[tokio::test]
async fn a_keychain_failing_during_a_sign_in_stores_no_account() {
    let rig = rig_with(Refresh::Plain, HttpConfig::default()).await;
    let alice = rig.sign_in("alice").await;
    let before = rig.snapshot();
    for (who, fault) in [
        ("bob", "write"),
        ("alice", "write"),
        ("bob", "gone"),
        ("alice", "gone"),
    ] {
        match fault {
            "write" => rig.keychain.fail_writes(&[1]),
            _ => rig.keychain.die_now(),
        }
        let start = rig
            .tessera
            .start_sign_in(PROVIDER, DEEP_LINK_REDIRECT, &[])
            .await
            .unwrap();
        let callback = rig.idp.authorize(&start.authorization_url, who);
        let t = rig.tessera.clone();
        let got = outcome(async move { t.complete_sign_in(&callback).await }).await;
        rig.keychain.heal();
        keychain_error(&format!("{who}, keychain {fault}"), got);
        assert_eq!(
            before.diff(&rig.snapshot()),
            Vec::<String>::new(),
            "{who}, {fault}"
        );
    }
    assert_eq!(rig.leaked(), Vec::<String>::new());
    assert!(rig.idp.refresh_token_alive(&rig.refresh_token(&alice.id)));
}

/// A keychain gone before a sign-out: nothing is revoked and nothing removed.
#[tokio::test]
async fn a_keychain_gone_before_a_sign_out_revokes_and_removes_nothing() {
    let rig = rig_with(Refresh::Plain, HttpConfig::default()).await;
    let alice = rig.sign_in("alice").await;
    let rt = rig.refresh_token(&alice.id);
    let before = rig.snapshot();
    rig.keychain.die_now();
    let t = rig.tessera.clone();
    keychain_error(
        "sign-out",
        outcome(async move { t.sign_out("alice", true).await }).await,
    );
    rig.keychain.heal();
    assert_eq!(before.diff(&rig.snapshot()), Vec::<String>::new());
    assert!(rig.idp.refresh_token_alive(&rt), "not revoked");
    assert_eq!(rig.idp.hits("/revoke"), 0);
}

/// A keychain that refuses the delete after the revocation: the record stays (its tokens are
/// spent, so it reads "sign in again"), and repeating the sign-out finishes it.
#[tokio::test]
async fn a_sign_out_whose_delete_fails_keeps_the_record_and_can_be_repeated() {
    let rig = rig_with(Refresh::Plain, HttpConfig::default()).await;
    let alice = rig.sign_in("alice").await;
    rig.keychain.fail_deletes();
    let t = rig.tessera.clone();
    keychain_error(
        "sign-out",
        outcome(async move { t.sign_out("alice", true).await }).await,
    );
    rig.keychain.heal();
    assert!(rig.tessera.account(&alice.id).is_ok(), "the record is kept");
    let err = rig.tessera.refresh(&alice.id).await.unwrap_err();
    assert_eq!(err.code(), "needs_sign_in", "{err}");
    rig.tessera.sign_out(&alice.id, true).await.unwrap();
    assert!(rig.tessera.accounts().unwrap().is_empty());
    assert!(rig.keychain.contents().is_empty());
    assert_eq!(rig.leaked(), Vec::<String>::new());
}

#[tokio::test]
async fn a_provider_whose_secret_cannot_be_stored_is_not_registered() {
    let rig = rig_with(Refresh::Plain, HttpConfig::default()).await;
    let before = rig.snapshot();
    let secret = "basic-secret-0123456789";
    for fault in ["write", "gone"] {
        match fault {
            "write" => rig.keychain.fail_writes(&[1]),
            _ => rig.keychain.die_now(),
        }
        let mut config = ProviderConfig::new("confidential", &rig.idp.issuer, "tessera-basic");
        config.client_auth = ClientAuth::ClientSecretBasic;
        let t = rig.tessera.clone();
        let got = outcome(async move {
            t.add_provider(config, Some(SecretString::new(secret)))
                .await
        })
        .await;
        rig.keychain.heal();
        keychain_error(fault, got);
        assert_eq!(
            before.diff(&rig.snapshot()),
            Vec::<String>::new(),
            "{fault}"
        );
    }
    assert_eq!(
        leaked_in(rig.dir.path(), &[secret.into()]),
        Vec::<String>::new()
    );
}

/// A slow keychain does not hold a forced refresh's answer back unless it must: the new access
/// token is handed over while its own write still waits (the agent answers its client at once)
/// and is stored once the keychain takes it; but a rotated refresh token is stored before
/// anything is handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_handed_over_before_its_write_but_after_a_rotated_refresh_token() {
    for refresh in [Refresh::Plain, Refresh::Rotating] {
        let rig = rig_with(refresh, HttpConfig::default()).await;
        let alice = rig.sign_in("alice").await;
        let first_rt = rig.refresh_token(&alice.id);
        let stored = |token: &str| {
            let contents = rig.keychain.contents();
            contents.values().any(|v| v.contains(token))
        };
        rig.keychain.hold_writes(true);
        let (handover, mut handed) = tokio::sync::oneshot::channel();
        let request = tessera_core::agent::TokenRequest {
            account: alice.id.clone(),
            org: None,
            min_valid: 0,
            force: true,
            id_token: false,
        };
        let t = rig.tessera.clone();
        let work =
            tokio::spawn(async move { t.token_handing_over(&request, Some(handover)).await });
        let early = tokio::time::timeout(Duration::from_millis(500), &mut handed).await;
        // Looked at while writes are held, asserted once they are let go (a failing assertion
        // must not leave the refresh blocked in the keychain).
        let stored_early = early
            .as_ref()
            .ok()
            .and_then(|h| h.as_ref().ok())
            .map(|(_, issued)| stored(issued.token.expose_secret()));
        rig.keychain.hold_writes(false);
        let issued = if refresh == Refresh::Plain {
            let (id, issued) = early.expect("handed over at once").unwrap();
            assert_eq!(id, alice.id);
            assert!(issued.refreshed);
            assert_eq!(stored_early, Some(false), "not stored yet");
            issued
        } else {
            assert!(
                early.is_err(),
                "handed over before the rotated refresh token was stored"
            );
            let (_, issued) = handed.await.unwrap();
            assert_ne!(
                rig.refresh_token(&alice.id),
                first_rt,
                "the rotated one is stored first"
            );
            issued
        };
        let (_, answered) = work.await.unwrap().unwrap();
        assert_eq!(answered.token.expose_secret(), issued.token.expose_secret());
        assert!(
            stored(issued.token.expose_secret()),
            "{refresh:?}: stored in the end"
        );
    }
}
