//! The layout, chunking and stores of the vault.

use std::sync::atomic::Ordering;

use super::*;

fn tokens() -> TokenSet {
    TokenSet {
        access_token: SecretString::new("at"),
        token_type: "Bearer".into(),
        expires_at: Some(100),
        refresh_token: Some(SecretString::new("rt")),
        id_token: None,
        scope: Some("openid".into()),
        nonce: Some("n".into()),
        id_token_matches_access_token: false,
        obtained_at: 40,
    }
}

#[test]
fn token_set_round_trips_and_namespaces_apart() {
    let store = MemoryStore::default();
    let a = Vault::new(Arc::new(store.clone()), "ns-a");
    let b = Vault::new(Arc::new(store.clone()), "ns-b");
    a.save_tokens("acc", &tokens()).unwrap();
    let back = a.load_tokens("acc").unwrap().unwrap();
    assert_eq!(back.refresh_token.as_ref().unwrap().expose_secret(), "rt");
    assert_eq!(back.remaining(70), Some(30));
    assert!(b.load_tokens("acc").unwrap().is_none());
    a.delete_tokens("acc").unwrap();
    a.delete_tokens("acc").unwrap();
    assert!(store.is_empty());
}

#[test]
fn remaining_saturates_at_both_ends() {
    let mut t = tokens();
    assert_eq!(t.remaining(u64::MAX), Some(0));
    t.expires_at = Some(u64::MAX);
    assert_eq!(t.remaining(0), Some(u64::MAX));
    assert_eq!(t.remaining(u64::MAX), Some(0));
}

fn big_tokens(tag: char) -> TokenSet {
    let long = |c: char| std::iter::repeat_n(c, 1500).collect::<String>();
    TokenSet {
        access_token: SecretString::new(long(tag)),
        refresh_token: Some(SecretString::new(long('r'))),
        id_token: Some(SecretString::new(long('i'))),
        scope: Some("openid ünïcødé 🔑".into()),
        ..tokens()
    }
}

fn assert_same(a: &TokenSet, b: &TokenSet) {
    assert_eq!(a.access_token, b.access_token);
    assert_eq!(a.refresh_token, b.refresh_token);
    assert_eq!(a.id_token, b.id_token);
    assert_eq!(a.scope, b.scope);
}

#[test]
fn values_too_large_for_one_windows_entry_are_split_and_read_back() {
    let store = MemoryStore::with_limit(WINDOWS_ENTRY_LIMIT);
    let v = Vault::new(Arc::new(store.clone()), "ns");
    v.save_tokens("acc", &big_tokens('a')).unwrap();
    assert_same(&v.load_tokens("acc").unwrap().unwrap(), &big_tokens('a'));
    let first = store.len();
    assert!(first > 2, "the set is split: {first} entries");
    assert!(
        store
            .entry_sizes()
            .iter()
            .all(|(_, size)| *size <= WINDOWS_ENTRY_LIMIT)
    );

    v.save_tokens("acc", &big_tokens('b')).unwrap();
    assert_same(&v.load_tokens("acc").unwrap().unwrap(), &big_tokens('b'));
    assert_eq!(store.len(), first, "the old pieces are gone");
    v.save_tokens("acc", &tokens()).unwrap();
    assert_eq!(
        v.load_tokens("acc").unwrap().unwrap().remaining(70),
        Some(30)
    );

    let pem = std::iter::repeat_n("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", 60).collect::<String>();
    v.save_client_credential("p", &SecretString::new(pem.as_str()))
        .unwrap();
    assert_eq!(
        v.load_client_credential("p")
            .unwrap()
            .unwrap()
            .expose_secret(),
        pem
    );

    v.delete_tokens("acc").unwrap();
    v.delete_client_credential("p").unwrap();
    assert!(store.is_empty(), "{:?}", store.entry_sizes());
}

#[test]
fn single_entry_values_stay_single_and_old_ones_readable() {
    let store = MemoryStore::with_limit(WINDOWS_ENTRY_LIMIT);
    let v = Vault::new(Arc::new(store.clone()), "ns");
    let old = r#"{"v":1,"access_token":"at","token_type":"Bearer","expires_at":100,"refresh_token":"rt","id_token":null,"scope":"openid","nonce":null,"id_token_matches_access_token":false,"obtained_at":40}"#;
    store
        .set(&v.account_key("acc"), &SecretString::new(old))
        .unwrap();
    let back = v.load_tokens("acc").unwrap().unwrap();
    assert_eq!(back.refresh_token.unwrap().expose_secret(), "rt");
    v.save_tokens("acc", &tokens()).unwrap();
    assert_eq!(store.len(), 1, "a set that fits is one entry");
}

/// A store whose writes start failing after a number of them.
struct FailingWrites {
    inner: MemoryStore,
    writes_left: std::sync::atomic::AtomicUsize,
}

impl SecretStore for FailingWrites {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(Error::Keychain("the keychain failed".into()));
        }
        self.writes_left.store(left - 1, Ordering::SeqCst);
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }

    fn entry_limit(&self) -> Option<usize> {
        self.inner.entry_limit()
    }
}

#[test]
fn a_failed_write_leaves_the_old_value_readable_and_no_stray_pieces() {
    let inner = MemoryStore::with_limit(WINDOWS_ENTRY_LIMIT);
    let store = Arc::new(FailingWrites {
        inner: inner.clone(),
        writes_left: usize::MAX.into(),
    });
    let v = Vault::new(store.clone(), "ns");
    for old in [tokens(), big_tokens('a')] {
        v.save_tokens("acc", &old).unwrap();
        let entries = inner.entry_sizes().len();
        for allowed in 0..8 {
            store.writes_left.store(allowed, Ordering::SeqCst);
            let result = v.save_tokens("acc", &big_tokens('b'));
            store.writes_left.store(usize::MAX, Ordering::SeqCst);
            if result.is_ok() {
                assert!(allowed > 2, "a split set takes several writes");
                v.save_tokens("acc", &old).unwrap();
                continue;
            }
            assert_same(&v.load_tokens("acc").unwrap().unwrap(), &old);
            assert_eq!(inner.len(), entries, "after {allowed} writes");
        }
    }
}

#[test]
fn locked_store_is_a_keychain_error() {
    let store = MemoryStore::default();
    store.set_locked(true);
    let v = Vault::new(Arc::new(store), "ns");
    assert_eq!(
        v.save_tokens("acc", &tokens()).unwrap_err().code(),
        "keychain"
    );
}
