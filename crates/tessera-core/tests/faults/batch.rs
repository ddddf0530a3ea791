//! Refreshing every account at once (`refresh_all`): one keychain write for the whole batch
//! (the shelf), and the promises of a single refresh kept when that write fails, when refresh
//! tokens rotate, and when another process refreshes one of the accounts meanwhile.

use tessera_core::http::HttpConfig;
use tessera_core::vault::SecretStore;
use tessera_core::{AccountStatus, Result, SecretString, Tessera};
use tessera_testkit::scripted::Refresh;

use crate::adversary::{Rig, assert_unchanged, outcome, rig_with};

/// Every account's outcome of a batch, `Ok` or its error code.
async fn refresh_all(tessera: &Tessera) -> Result<Vec<std::result::Result<bool, &'static str>>> {
    Ok(tessera
        .refresh_all(16)
        .await?
        .into_iter()
        .map(|(_, outcome)| outcome.map(|o| o.rotated).map_err(|e| e.code()))
        .collect())
}

async fn three_accounts(refresh: Refresh) -> (Rig, Vec<String>) {
    let rig = rig_with(refresh, HttpConfig::default()).await;
    let mut ids = Vec::new();
    for sub in ["alice", "bob", "carol"] {
        ids.push(rig.sign_in(sub).await.id);
    }
    (rig, ids)
}

/// The access token the keychain holds for account `id`.
fn stored_access_token(rig: &Rig, id: &str) -> String {
    rig.stored(id).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn own_entries(rig: &Rig) -> Vec<String> {
    rig.keychain
        .contents()
        .into_keys()
        .filter(|k| k.contains("/account/"))
        .collect()
}

#[tokio::test]
async fn a_batch_is_one_keychain_write_and_its_accounts_work_as_before() {
    let (rig, ids) = three_accounts(Refresh::Plain).await;
    assert_eq!(own_entries(&rig).len(), 3);
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(false); 3]);
    assert_eq!(
        own_entries(&rig),
        Vec::<String>::new(),
        "moved to the shelf"
    );
    let before = rig.keychain.changes();
    let stored = rig.stored(&ids[0]).unwrap();
    rig.clock.advance(60);
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(false); 3]);
    assert_eq!(rig.keychain.changes() - before, 1, "one write for all");
    assert_ne!(
        rig.stored(&ids[0]).unwrap()["access_token"],
        stored["access_token"]
    );

    // Another process reads, refreshes and signs out of shelved accounts.
    let other = rig.reopen();
    let token = other.access_token("alice", 0, false).await.unwrap();
    assert!(!token.refreshed);
    assert_eq!(
        token.token.expose_secret(),
        stored_access_token(&rig, &ids[0])
    );
    let refreshed = other.access_token("alice", 0, true).await.unwrap();
    assert_eq!(
        refreshed.token.expose_secret(),
        stored_access_token(&rig, &ids[0]),
        "a single refresh of a shelved account writes the shelf"
    );
    assert_eq!(own_entries(&rig), Vec::<String>::new());
    other.sign_out("alice", false).await.unwrap();
    assert!(rig.stored(&ids[0]).is_none(), "gone from the shelf");
    assert!(rig.stored(&ids[1]).is_some());
    rig.tessera.sign_out("bob", false).await.unwrap();
    rig.tessera.sign_out("carol", false).await.unwrap();
    assert_eq!(
        rig.keychain.contents().into_keys().collect::<Vec<_>>(),
        Vec::<String>::new(),
        "the empty shelf is removed"
    );
}

#[tokio::test]
async fn a_batch_whose_one_write_fails_changes_nothing() {
    let (rig, _) = three_accounts(Refresh::Plain).await;
    let before = rig.snapshot();
    rig.keychain.fail_writes(&[1]);
    let t = rig.tessera.clone();
    let err = outcome(async move { t.refresh_all(16).await })
        .await
        .unwrap();
    assert_eq!(err.code(), "keychain", "{err}");
    rig.keychain.heal();
    assert_unchanged("failed batch", &before, &rig.snapshot());
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(false); 3]);
}

/// A rotated refresh token is stored at once, where its slot lives, before the batch goes on:
/// a batch whose one write fails loses none of them.
#[tokio::test]
async fn a_batch_whose_write_fails_keeps_every_rotated_refresh_token() {
    let (rig, ids) = three_accounts(Refresh::Rotating).await;
    for round in 0..2 {
        rig.keychain.fail_writes(&[4]);
        let t = rig.tessera.clone();
        let err = outcome(async move { t.refresh_all(16).await })
            .await
            .unwrap();
        assert_eq!(err.code(), "keychain", "round {round}: {err}");
        rig.keychain.heal();
        for id in &ids {
            assert!(
                rig.idp.refresh_token_alive(&rig.refresh_token(id)),
                "round {round}: the stored refresh token is the live one"
            );
        }
        assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(true); 3]);
    }
    assert_eq!(rig.leaked(), Vec::<String>::new());
}

/// A batch holds every account's transaction: another process refreshing one of them waits
/// for it, and no refresh token is used twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_another_process_refresh_one_account_in_turn() {
    let (rig, ids) = three_accounts(Refresh::Rotating).await;
    refresh_all(&rig.tessera).await.unwrap();
    for _ in 0..3 {
        let other = rig.reopen();
        let single = tokio::spawn(async move { other.refresh("bob").await.map(|o| o.rotated) });
        let batch = refresh_all(&rig.tessera).await.unwrap();
        assert_eq!(batch, [Ok(true); 3]);
        assert!(single.await.unwrap().unwrap());
        for id in &ids {
            assert!(rig.idp.refresh_token_alive(&rig.refresh_token(id)));
            assert_eq!(
                rig.tessera.account(id).unwrap().status,
                AccountStatus::Active
            );
        }
    }
}

/// A batch that died after its shelf write but before `tessera.json` named what it moved leaves
/// copies on the shelf beside the accounts' own entries; signing out still removes every copy.
#[tokio::test]
async fn a_sign_out_removes_a_copy_the_shelf_holds_unnamed() {
    let (rig, ids) = three_accounts(Refresh::Plain).await;
    let own: Vec<(String, String)> = rig
        .keychain
        .contents()
        .into_iter()
        .filter(|(k, _)| k.contains("/account/"))
        .collect();
    let state = std::fs::read(rig.dir.path().join("tessera.json")).unwrap();
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(false); 3]);
    // As if the record write and the deletes after the shelf write never happened.
    std::fs::write(rig.dir.path().join("tessera.json"), state).unwrap();
    for (key, value) in &own {
        rig.keychain
            .set(key, &SecretString::new(value.as_str()))
            .unwrap();
    }
    let tessera = rig.reopen();
    tessera.sign_out("alice", false).await.unwrap();
    let shelf = shelf_accounts(&rig);
    assert!(!shelf.contains(&ids[0]), "alice's copy is gone: {shelf:?}");
    assert!(shelf.contains(&ids[1]));
    tessera.sign_out("bob", false).await.unwrap();
    tessera.sign_out("carol", false).await.unwrap();
    assert_eq!(
        rig.keychain.contents().into_keys().collect::<Vec<_>>(),
        Vec::<String>::new()
    );
}

/// The account ids the shelf holds token sets of.
fn shelf_accounts(rig: &Rig) -> Vec<String> {
    let shelf = rig
        .keychain
        .contents()
        .into_iter()
        .find(|(k, _)| k.ends_with("/shelf"))
        .map(|(_, v)| v)
        .unwrap_or_else(|| "{\"slots\":{}}".into());
    let shelf: serde_json::Value = serde_json::from_str(&shelf).unwrap();
    shelf["slots"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A shelf the keychain returns damaged (edited by hand, or not ours): every path that needs
/// it fails with a clear `keychain` error, reaches no provider and changes nothing.
/// Writes `value` over the shelf's keychain entry.
fn overwrite_shelf(rig: &Rig, value: &str) -> String {
    let shelf = rig
        .keychain
        .contents()
        .into_keys()
        .find(|k| k.ends_with("/shelf"))
        .unwrap();
    rig.keychain.set(&shelf, &SecretString::new(value)).unwrap();
    shelf
}

#[tokio::test]
async fn a_damaged_shelf_is_a_clear_error_until_a_sign_in_replaces_it() {
    let (rig, ids) = three_accounts(Refresh::Rotating).await;
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(true); 3]);
    overwrite_shelf(&rig, "{\"v\":1,\"slots\":[\"not a map\"]}");
    let before = rig.snapshot();
    let token_requests = rig.idp.hits("/token");
    let tessera = rig.reopen();
    for (what, err) in [
        (
            "token",
            tessera.access_token("alice", 0, true).await.unwrap_err(),
        ),
        ("refresh", tessera.refresh("bob").await.unwrap_err()),
        ("refresh --all", tessera.refresh_all(16).await.unwrap_err()),
        (
            "sign-out with revocation (its tokens cannot be read)",
            tessera.sign_out("bob", true).await.unwrap_err(),
        ),
    ] {
        assert_eq!(err.code(), "keychain", "{what}: {err}");
        assert!(err.to_string().contains("shelf"), "{what}: {err}");
    }
    assert_eq!(
        rig.idp.hits("/token"),
        token_requests,
        "no provider reached"
    );
    assert_unchanged("damaged shelf", &before, &rig.snapshot());

    // The ways out: forgetting an account without revoking, and signing in again, which
    // replaces the shelf; the third account's tokens were on the damaged shelf, so it must
    // sign in again too.
    tessera.sign_out("bob", false).await.unwrap();
    assert!(tessera.account("bob").is_err(), "bob is forgotten");
    let alice = rig.try_sign_in(&tessera, "alice").await.unwrap();
    assert_eq!(alice.id, ids[0], "the same account");
    let token = tessera.access_token("alice", 0, false).await.unwrap();
    assert_eq!(
        token.token.expose_secret(),
        stored_access_token(&rig, &ids[0])
    );
    let carol = tessera.access_token("carol", 0, false).await.unwrap_err();
    assert_eq!(carol.code(), "needs_sign_in", "{carol}");
    let outcomes: Vec<_> = tessera
        .refresh_all(16)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, outcome)| (id, outcome.map(|o| o.rotated).map_err(|e| e.code())))
        .collect();
    assert_eq!(outcomes.len(), 2, "alice and carol: {outcomes:?}");
    for (id, outcome) in outcomes {
        let expected = if id == ids[0] {
            Ok(true)
        } else {
            Err("needs_sign_in")
        };
        assert_eq!(outcome, expected, "{id}");
    }
}

#[tokio::test]
async fn a_shelf_of_a_newer_layout_is_refused_and_never_replaced() {
    let (rig, _) = three_accounts(Refresh::Plain).await;
    assert_eq!(refresh_all(&rig.tessera).await.unwrap(), [Ok(false); 3]);
    let newer = "{\"v\":2,\"slots\":{},\"more\":\"to come\"}";
    let shelf = overwrite_shelf(&rig, newer);
    let tessera = rig.reopen();
    let err = tessera.access_token("alice", 0, false).await.unwrap_err();
    assert_eq!(err.code(), "keychain", "{err}");
    assert!(err.to_string().contains("newer Tessera"), "{err}");
    let keychain = rig.keychain.contents();
    let err = rig.try_sign_in(&tessera, "alice").await.unwrap_err();
    assert!(err.to_string().contains("newer Tessera"), "{err}");
    assert_eq!(rig.keychain.contents(), keychain, "nothing stored");
    let before = rig.snapshot();
    let err = tessera.sign_out("bob", false).await.unwrap_err();
    assert!(err.to_string().contains("newer Tessera"), "{err}");
    assert_unchanged("newer shelf", &before, &rig.snapshot());
    assert_eq!(rig.keychain.contents()[&shelf], newer, "left as it was");
}
