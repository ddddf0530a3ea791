//! The secret side of Tessera. `SecretStore` is the injected keychain (the real OS keychain
//! through `keyring`, or memory in tests); `Vault` lays Tessera's secrets out in it:
//! one entry per account and [`Slot`] holding a whole token set (so a rotated refresh token
//! and the access token it came with are written in one step), and one per provider holding
//! its client secret or private key. Entries are namespaced by the data directory's random id,
//! so two data directories never share an entry.
//!
//! Invariant: refresh tokens, client secrets and private keys exist only here — never in a
//! file, a log line or a serialized view.
//!
//! Keychains that bound an entry's size (Windows Credential Manager: 2560 bytes of UTF-16,
//! about 1280 characters; [`SecretStore::entry_limit`] for others) get a value that does not
//! fit split into chunk entries (`KEY/chunk/GEN/I`), with `KEY` holding a short manifest that
//! names the generation `GEN` and the chunk count. A new value is written to a new generation
//! before the manifest is switched to it, so a failed write leaves the old value readable;
//! the old generation is deleted afterwards, and the manifest keeps naming it until a later
//! write has seen it gone, so no chunk is ever left without a manifest that names it. Values
//! that fit are stored as they are, as every earlier version stored them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The keychain service name of every entry Tessera writes.
pub const SERVICE: &str = "dev.tessera";

/// A place to keep secrets by key.
pub trait SecretStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<SecretString>>;
    fn set(&self, key: &str, value: &SecretString) -> Result<()>;
    /// Removes the entry; an absent entry is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// The largest value one entry holds, in bytes of its UTF-16 encoding; `None` when the
    /// platform's limit (if any) is the only one.
    fn entry_limit(&self) -> Option<usize> {
        None
    }
}

/// Windows Credential Manager's largest credential blob (`CRED_MAX_CREDENTIAL_BLOB_SIZE`),
/// which holds the value as UTF-16.
pub const WINDOWS_ENTRY_LIMIT: usize = 2560;

/// The entry limit of the platform's keychain.
const PLATFORM_ENTRY_LIMIT: Option<usize> = if cfg!(windows) {
    Some(WINDOWS_ENTRY_LIMIT)
} else {
    None
};

/// The OS keychain (Secret Service on Linux and the BSDs, Keychain on macOS, Credential
/// Manager on Windows). Clones share one Secret Service session (see [`crate::secret_service`]):
/// a process talks to the keychain daemon over a single connection, whatever the number of
/// entries it reads or writes.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    session: Arc<crate::secret_service::Session>,
}

impl KeyringStore {
    pub fn new() -> Self {
        KeyringStore {
            service: SERVICE.to_string(),
            #[cfg(not(any(target_os = "macos", target_os = "windows")))]
            session: Arc::default(),
        }
    }
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
impl SecretStore for KeyringStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let value = self
            .session
            .get(&self.service, key)
            .map_err(keychain_error)?;
        Ok(value.map(SecretString::new))
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.session
            .set(&self.service, key, value.expose_secret())
            .map_err(keychain_error)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.session
            .delete(&self.service, key)
            .map_err(keychain_error)
    }
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn keychain_error(e: crate::secret_service::Failure) -> Error {
    use crate::secret_service::Failure;
    match e {
        Failure::NoAccess(inner) => Error::Keychain(format!(
            "the keychain is locked or no Secret Service is running ({inner})"
        )),
        Failure::Ambiguous(n) => Error::Keychain(format!(
            "{n} keychain entries claim the same name; remove the extra ones"
        )),
        Failure::Platform(inner) => Error::Keychain(format!("the keychain failed: {inner}")),
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
impl KeyringStore {
    fn entry(&self, key: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, key).map_err(keychain_error)
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
impl SecretStore for KeyringStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        match self.entry(key)?.get_password() {
            Ok(value) => Ok(Some(SecretString::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error(e)),
        }
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.entry(key)?
            .set_password(value.expose_secret())
            .map_err(keychain_error)
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_error(e)),
        }
    }
}

#[cfg(any(target_os = "macos", target_os = "windows"))]
fn keychain_error(e: keyring::Error) -> Error {
    match e {
        keyring::Error::NoStorageAccess(inner) => Error::Keychain(format!(
            "the keychain is locked or no Secret Service is running ({inner})"
        )),
        keyring::Error::PlatformFailure(inner) => {
            Error::Keychain(format!("the keychain failed: {inner}"))
        }
        other => Error::Keychain(other.to_string()),
    }
}

/// An in-memory store for tests; can be switched to fail like a locked keychain, and can
/// bound its entries' size like Windows Credential Manager.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, SecretString>>>,
    locked: Arc<AtomicBool>,
    limit: Option<usize>,
}

impl MemoryStore {
    /// A store that refuses values longer than `limit` bytes of UTF-16 (Windows Credential
    /// Manager: [`WINDOWS_ENTRY_LIMIT`]).
    pub fn with_limit(limit: usize) -> Self {
        MemoryStore {
            limit: Some(limit),
            ..MemoryStore::default()
        }
    }

    /// Every entry's key and value size in bytes of UTF-16.
    pub fn entry_sizes(&self) -> Vec<(String, usize)> {
        self.entries
            .lock()
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), utf16_bytes(v.expose_secret())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// From now on every call fails as a locked keychain would (or works again).
    pub fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::SeqCst);
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, SecretString>>> {
        if self.locked.load(Ordering::SeqCst) {
            return Err(Error::Keychain("the keychain is locked".into()));
        }
        self.entries
            .lock()
            .map_err(|_| Error::Keychain("memory store poisoned".into()))
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        Ok(self.check()?.get(key).cloned())
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let mut entries = self.check()?;
        if let Some(limit) = self.limit
            && utf16_bytes(value.expose_secret()) > limit
        {
            return Err(Error::Keychain(format!(
                "the value for {key} is longer than one keychain entry holds ({limit} bytes)"
            )));
        }
        entries.insert(key.to_string(), value.clone());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check()?.remove(key);
        Ok(())
    }

    fn entry_limit(&self) -> Option<usize> {
        self.limit
    }
}

fn utf16_bytes(text: &str) -> usize {
    text.chars().map(|c| c.len_utf16() * 2).sum()
}

/// Which token set of an account: the account's own, or one bound to an organization
/// (Auth0 org sign-ins, Logto organization tokens, Stytch org sessions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    Main,
    Org(String),
}

impl Slot {
    pub fn org(org: Option<&str>) -> Slot {
        org.map_or(Slot::Main, |o| Slot::Org(o.to_string()))
    }
}

/// Everything the provider handed out for one account.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub token_type: String,
    /// Unix seconds; `None` when the provider did not say.
    pub expires_at: Option<u64>,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    pub scope: Option<String>,
    /// The nonce of the sign-in that produced the ID token (no longer secret once used).
    pub nonce: Option<String>,
    /// Whether `id_token` came in the same response as `access_token` (its `at_hash` applies).
    pub id_token_matches_access_token: bool,
    pub obtained_at: u64,
}

impl TokenSet {
    /// Seconds of validity left at `now` (0 when expired, `None` when unknown).
    pub fn remaining(&self, now: u64) -> Option<u64> {
        self.expires_at.map(|e| e.saturating_sub(now))
    }
}

/// The keychain layout, see the module docs.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn SecretStore>,
    namespace: String,
}

/// The keychain record of a token set. Its secret fields are wiped when it is dropped.
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    v: u8,
    access_token: String,
    token_type: String,
    expires_at: Option<u64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
    nonce: Option<String>,
    id_token_matches_access_token: bool,
    obtained_at: u64,
}

impl Drop for StoredTokens {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
        self.id_token.zeroize();
    }
}

/// Counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as JSON written into a buffer of the exact size, so no outgrown buffer holding
/// part of a secret is freed unwiped.
fn secret_json(value: &impl Serialize) -> Result<SecretString> {
    let fail = |e: serde_json::Error| Error::Keychain(format!("cannot encode the token set: {e}"));
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, value).map_err(fail)?;
    let mut json = Vec::with_capacity(size.0);
    serde_json::to_writer(&mut json, value).map_err(fail)?;
    let json = String::from_utf8(json)
        .map_err(|_| Error::Keychain("the token set is not UTF-8".into()))?;
    Ok(SecretString::new(json))
}

/// What the main entry of a chunked value says: the generation holding the value, and
/// earlier generations that may still have chunks to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    current: Generation,
    stale: Vec<Generation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Generation {
    id: String,
    chunks: usize,
}

const MANIFEST_PREFIX: &str = "tessera-chunks/1";

/// More chunks than any value of Tessera's needs: a manifest naming more is damaged.
const MAX_CHUNKS: usize = 1024;

impl Manifest {
    fn parse(value: &str) -> Option<Result<Manifest>> {
        let rest = value.strip_prefix(MANIFEST_PREFIX)?;
        let generations: Option<Vec<Generation>> = rest
            .split_whitespace()
            .map(|g| {
                let (id, chunks) = g.split_once(':')?;
                let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
                Some(Generation {
                    id: id.to_string(),
                    chunks: chunks
                        .parse()
                        .ok()
                        .filter(|n| valid && (1..=MAX_CHUNKS).contains(n))?,
                })
            })
            .collect();
        Some(match generations {
            Some(mut g) if !g.is_empty() => {
                let current = g.remove(0);
                Ok(Manifest { current, stale: g })
            }
            _ => Err(Error::Keychain(
                "a chunked keychain entry is damaged".into(),
            )),
        })
    }

    fn render(&self) -> SecretString {
        let mut text = MANIFEST_PREFIX.to_string();
        for g in std::iter::once(&self.current).chain(&self.stale) {
            text.push_str(&format!(" {}:{}", g.id, g.chunks));
        }
        SecretString::new(text)
    }
}

/// `value` cut into pieces of at most `limit` bytes of UTF-16, at character boundaries.
fn split(value: &str, limit: usize) -> Vec<SecretString> {
    let mut pieces = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (at, c) in value.char_indices() {
        let cost = c.len_utf16() * 2;
        if size + cost > limit && at > start {
            pieces.push(SecretString::new(&value[start..at]));
            (start, size) = (at, 0);
        }
        size += cost;
    }
    pieces.push(SecretString::new(&value[start..]));
    pieces
}

impl Vault {
    pub fn new(store: Arc<dyn SecretStore>, namespace: &str) -> Self {
        Vault {
            store,
            namespace: namespace.to_string(),
        }
    }

    /// The size bound of one entry, the store's or the platform's, whichever is smaller.
    fn entry_limit(&self) -> Option<usize> {
        match (self.store.entry_limit(), PLATFORM_ENTRY_LIMIT) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn chunk_key(key: &str, generation: &str, index: usize) -> String {
        format!("{key}/chunk/{generation}/{index}")
    }

    /// Deletes a generation's chunks; stops at the first failure.
    fn delete_chunks(&self, key: &str, generation: &Generation) -> Result<()> {
        (0..generation.chunks)
            .try_for_each(|i| self.store.delete(&Self::chunk_key(key, &generation.id, i)))
    }

    /// The value of `key`, whole (reassembled from its chunks when it was split).
    fn read(&self, key: &str) -> Result<Option<SecretString>> {
        let Some(raw) = self.store.get(key)? else {
            return Ok(None);
        };
        let Some(manifest) = Manifest::parse(raw.expose_secret()) else {
            return Ok(Some(raw));
        };
        let current = manifest?.current;
        let mut chunks = Vec::with_capacity(current.chunks);
        for i in 0..current.chunks {
            let chunk = self
                .store
                .get(&Self::chunk_key(key, &current.id, i))?
                .ok_or_else(|| {
                    Error::Keychain(format!("the keychain entry {key} is missing a piece"))
                })?;
            chunks.push(chunk);
        }
        let mut whole = String::with_capacity(chunks.iter().map(|c| c.expose_secret().len()).sum());
        for chunk in &chunks {
            whole.push_str(chunk.expose_secret());
        }
        Ok(Some(SecretString::new(whole)))
    }

    /// Stores `value` under `key`, split when it does not fit one entry (see the module docs).
    fn write(&self, key: &str, value: &SecretString) -> Result<()> {
        let Some(limit) = self.entry_limit() else {
            return self.store.set(key, value);
        };
        // A damaged manifest is overwritten: the value it named is lost either way.
        let previous = self
            .store
            .get(key)?
            .and_then(|raw| Manifest::parse(raw.expose_secret()))
            .and_then(Result::ok);
        let text = value.expose_secret();
        if previous.is_none() && utf16_bytes(text) <= limit && !text.starts_with(MANIFEST_PREFIX) {
            return self.store.set(key, value);
        }
        let mut stale: Vec<Generation> = Vec::new();
        if let Some(previous) = &previous {
            for generation in &previous.stale {
                if self.delete_chunks(key, generation).is_err() {
                    stale.push(generation.clone());
                }
            }
            stale.push(previous.current.clone());
        }
        let pieces = split(text, limit);
        let generation = Generation {
            id: format!("{:08x}", rand::random::<u32>()),
            chunks: pieces.len(),
        };
        let manifest = Manifest {
            current: generation.clone(),
            stale,
        };
        let written = pieces
            .iter()
            .enumerate()
            .try_for_each(|(i, piece)| {
                self.store
                    .set(&Self::chunk_key(key, &generation.id, i), piece)
            })
            .and_then(|()| self.store.set(key, &manifest.render()));
        if let Err(e) = written {
            let _ = self.delete_chunks(key, &generation);
            return Err(e);
        }
        if let Some(previous) = previous {
            let _ = self.delete_chunks(key, &previous.current);
        }
        Ok(())
    }

    /// Removes `key` and every chunk its manifest names; the manifest goes last, so an
    /// interrupted removal can be done again.
    fn remove(&self, key: &str) -> Result<()> {
        if let Some(raw) = self.store.get(key)?
            && let Some(manifest) = Manifest::parse(raw.expose_secret())
        {
            let manifest = manifest?;
            for generation in std::iter::once(&manifest.current).chain(&manifest.stale) {
                self.delete_chunks(key, generation)?;
            }
        }
        self.store.delete(key)
    }

    /// The keychain account name of an account's main entry.
    pub fn account_key(&self, account_id: &str) -> String {
        format!("{}/account/{account_id}", self.namespace)
    }

    fn slot_key(&self, account_id: &str, slot: &Slot) -> String {
        match slot {
            Slot::Main => self.account_key(account_id),
            Slot::Org(org) => format!("{}/org/{org}", self.account_key(account_id)),
        }
    }

    fn provider_key(&self, provider: &str) -> String {
        format!("{}/provider/{provider}", self.namespace)
    }

    pub fn load_tokens(&self, account_id: &str) -> Result<Option<TokenSet>> {
        self.load_slot(account_id, &Slot::Main)
    }

    pub fn load_slot(&self, account_id: &str, slot: &Slot) -> Result<Option<TokenSet>> {
        let Some(raw) = self.read(&self.slot_key(account_id, slot))? else {
            return Ok(None);
        };
        let mut s: StoredTokens = serde_json::from_str(raw.expose_secret()).map_err(|_| {
            Error::Keychain(format!(
                "the keychain entry of account {account_id} is unreadable"
            ))
        })?;
        Ok(Some(TokenSet {
            access_token: SecretString::new(std::mem::take(&mut s.access_token)),
            token_type: std::mem::take(&mut s.token_type),
            expires_at: s.expires_at,
            refresh_token: s.refresh_token.take().map(SecretString::new),
            id_token: s.id_token.take().map(SecretString::new),
            scope: s.scope.take(),
            nonce: s.nonce.take(),
            id_token_matches_access_token: s.id_token_matches_access_token,
            obtained_at: s.obtained_at,
        }))
    }

    pub fn save_tokens(&self, account_id: &str, tokens: &TokenSet) -> Result<()> {
        self.save_slot(account_id, &Slot::Main, tokens)
    }

    pub fn save_slot(&self, account_id: &str, slot: &Slot, tokens: &TokenSet) -> Result<()> {
        let stored = StoredTokens {
            v: 1,
            access_token: tokens.access_token.expose_secret().to_string(),
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at,
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            id_token: tokens
                .id_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            scope: tokens.scope.clone(),
            nonce: tokens.nonce.clone(),
            id_token_matches_access_token: tokens.id_token_matches_access_token,
            obtained_at: tokens.obtained_at,
        };
        self.write(&self.slot_key(account_id, slot), &secret_json(&stored)?)
    }

    pub fn delete_tokens(&self, account_id: &str) -> Result<()> {
        self.delete_slot(account_id, &Slot::Main)
    }

    pub fn delete_slot(&self, account_id: &str, slot: &Slot) -> Result<()> {
        self.remove(&self.slot_key(account_id, slot))
    }

    /// The client secret or private key (PEM or JWK) of a provider.
    pub fn load_client_credential(&self, provider: &str) -> Result<Option<SecretString>> {
        self.read(&self.provider_key(provider))
    }

    pub fn save_client_credential(&self, provider: &str, credential: &SecretString) -> Result<()> {
        self.write(&self.provider_key(provider), credential)
    }

    pub fn delete_client_credential(&self, provider: &str) -> Result<()> {
        self.remove(&self.provider_key(provider))
    }
}

#[cfg(test)]
mod tests {
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
}
