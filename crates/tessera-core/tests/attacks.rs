//! Attacks on sign-in that once worked (issue 8): a mailed Stack code swapped for another
//! person's, a forged Stytch link ending a real sign-in, and an account id a provider could
//! collide with. Each: a typed error, and nothing stored changes.

use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::vault::SecretStore;
use tessera_core::{Account, EmailLinkOutcome, ProviderDraft, ProviderKind};
use tessera_testkit::fakes::{StackFake, StytchFake};
use tessera_testkit::{Browser, Profile};

mod common;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

async fn tessera_with(draft: ProviderDraft) -> common::Bare {
    let bare = common::bare(HttpConfig::default());
    bare.tessera.add_provider_draft(draft).await.unwrap();
    bare
}

fn stack_draft(fake: &StackFake) -> ProviderDraft {
    ProviderDraft {
        kind: ProviderKind::StackAuth,
        name: "stack".into(),
        project_id: Some(fake.project_id.clone()),
        client_key: Some(fake.publishable_key.clone()),
        base_url: Some(fake.base_url.clone()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_mailed_stack_code_of_another_mail_is_refused_and_the_wait_goes_on() {
    let fake = StackFake::start().await;
    let victim = tessera_with(stack_draft(&fake)).await;
    let attacker = tessera_with(stack_draft(&fake)).await;
    victim
        .tessera
        .start_email_sign_in("stack", "bob@example.com", CALLBACK)
        .await
        .unwrap();
    // The attacker asks for a code for their own account and hands its link to the victim's
    // waiting sign-in (another local user, or a web page scanning loopback ports).
    attacker
        .tessera
        .start_email_sign_in("stack", "alice@example.com", CALLBACK)
        .await
        .unwrap();
    let swapped = fake.latest_link_to("alice@example.com").await;
    let err = victim
        .tessera
        .complete_email_link_for("stack", &swapped)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "malformed_callback", "{err}");
    assert!(victim.tessera.accounts().unwrap().is_empty());
    assert!(victim.store.is_empty(), "nothing reached the keychain");

    let own = fake.latest_link_to("bob@example.com").await;
    let EmailLinkOutcome::SignedIn(bob) = victim
        .tessera
        .complete_email_link_for("stack", &own)
        .await
        .unwrap()
    else {
        panic!("a Stack link signs in");
    };
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
}

#[tokio::test]
async fn a_forged_stytch_discovery_link_leaves_the_real_sign_in_waiting() {
    let fake = StytchFake::start().await;
    let bare = tessera_with(ProviderDraft {
        kind: ProviderKind::StytchB2b,
        name: "stytch".into(),
        project_id: Some(fake.project_id.clone()),
        client_key: Some(fake.public_token.clone()),
        base_url: Some(fake.base_url.clone()),
        ..Default::default()
    })
    .await;
    bare.tessera
        .start_email_sign_in("stytch", "alice@example.com", DEEP_LINK_REDIRECT)
        .await
        .unwrap();
    let forged = "dev.tessera:/callback?stytch_token_type=discovery&token=forged-by-a-web-page";
    assert!(bare.tessera.is_email_link(forged));
    let err = bare.tessera.complete_email_link(forged).await.unwrap_err();
    assert_eq!(err.kind(), tessera_core::ErrorKind::Provider, "{err}");

    let link = fake.latest_link_to("alice@example.com").await;
    match bare.tessera.complete_email_link(&link).await.unwrap() {
        EmailLinkOutcome::PickOrganizations(d) => assert_eq!(d.email, "alice@example.com"),
        other => panic!("the real link still works: {other:?}"),
    }
}

/// Rewrites the state file's account `from` as `to`, moving its keychain entry along: what
/// a colliding (or an earlier version's short) account id looks like.
fn rename_account(env: &common::Env, from: &str, to: &str) {
    let path = env.dir.path().join("tessera.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(from, to)).unwrap();
    let (old_key, new_key) = (env.tessera.keychain_key(from), env.tessera.keychain_key(to));
    let tokens = env.store.get(&old_key).unwrap().unwrap();
    env.store.set(&new_key, &tokens).unwrap();
    env.store.delete(&old_key).unwrap();
}

#[tokio::test]
async fn a_sign_in_is_never_merged_into_another_persons_account() {
    let env = common::env(Profile::Plain).await;
    let alice = env.sign_in("alice").await;
    // Alice's account holds the id Bob's sign-in computes (a ground collision).
    let bobs_id = Account::id_for("local", "bob");
    rename_account(&env, &alice.id, &bobs_id);
    let state = env.state_file();
    let keychain = env.stored(&bobs_id);

    let start = env
        .tessera
        .start_sign_in("local", DEEP_LINK_REDIRECT, &[])
        .await
        .unwrap();
    let callback = Browser::new().login(&start.authorization_url, "bob").await;
    let err = env.tessera.complete_sign_in(&callback).await.unwrap_err();
    assert_eq!(err.code(), "token_rejected", "{err}");
    assert_eq!(env.state_file(), state, "the account record is unchanged");
    assert_eq!(
        env.stored(&bobs_id),
        keychain,
        "alice's tokens are unchanged"
    );
}

#[tokio::test]
async fn an_account_with_an_earlier_short_id_keeps_it_on_the_next_sign_in() {
    let env = common::env(Profile::Plain).await;
    let alice = env.sign_in("alice").await;
    assert_eq!(
        alice.id.len(),
        "acc-".len() + 64,
        "a full-width id: {}",
        alice.id
    );
    rename_account(&env, &alice.id, "acc-0123456789");

    let again = env.sign_in("alice").await;
    assert_eq!(again.id, "acc-0123456789");
    assert_eq!(env.tessera.accounts().unwrap().len(), 1);
    env.tessera.refresh(&again.id).await.unwrap();
}
