//! The secret side of Tessera. `SecretStore` is the injected keychain (the real OS keychain
//! through `keyring`, or memory in tests); `Vault` lays Tessera's secrets out in it:
//! one entry per account and [`Slot`] holding a whole token set (so a rotated refresh token
//! and the access token it came with are written in one step), and one per provider holding
//! its client secret or private key; or, for what `refresh --all` moved there, one
//! [`Shelf`] entry holding many of both. Entries are namespaced by the data directory's random id,
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

mod shelf;
mod store;

pub(crate) use shelf::Shelf;
pub use store::{KeyringStore, MemoryStore, SERVICE, SecretStore, WINDOWS_ENTRY_LIMIT};
use store::{PLATFORM_ENTRY_LIMIT, utf16_bytes};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::secret::SecretString;

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

    /// The slot's name in `tessera.json` and on the shelf: `main` or `org/ORG`.
    pub fn name(&self) -> String {
        match self {
            Slot::Main => "main".into(),
            Slot::Org(org) => format!("org/{org}"),
        }
    }
}

/// Everything the provider handed out for one account.
#[derive(Debug, Clone)]
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
#[derive(Clone, Serialize, Deserialize)]
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

impl StoredTokens {
    fn of(tokens: &TokenSet) -> Self {
        StoredTokens {
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
        }
    }

    fn to_token_set(&self) -> TokenSet {
        TokenSet {
            access_token: SecretString::new(self.access_token.as_str()),
            token_type: self.token_type.clone(),
            expires_at: self.expires_at,
            refresh_token: self.refresh_token.as_deref().map(SecretString::new),
            id_token: self.id_token.as_deref().map(SecretString::new),
            scope: self.scope.clone(),
            nonce: self.nonce.clone(),
            id_token_matches_access_token: self.id_token_matches_access_token,
            obtained_at: self.obtained_at,
        }
    }
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

    /// Fails as a locked or absent keychain does (see [`SecretStore::check_writable`]), so a
    /// sign-in finds out before it spends its code.
    pub fn check_writable(&self) -> Result<()> {
        self.store.check_writable()
    }

    /// Gets the store ready (see [`SecretStore::prepare`]) on a blocking thread.
    pub fn prepare_in_background(&self) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.prepare())
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
        let stored: StoredTokens = serde_json::from_str(raw.expose_secret()).map_err(|_| {
            Error::Keychain(format!(
                "the keychain entry of account {account_id} is unreadable"
            ))
        })?;
        Ok(Some(stored.to_token_set()))
    }

    /// Whether `slot` has an entry: the keychain is asked, the value is not read.
    pub fn holds_slot(&self, account_id: &str, slot: &Slot) -> Result<bool> {
        self.store.contains(&self.slot_key(account_id, slot))
    }

    pub fn save_tokens(&self, account_id: &str, tokens: &TokenSet) -> Result<()> {
        self.save_slot(account_id, &Slot::Main, tokens)
    }

    pub fn save_slot(&self, account_id: &str, slot: &Slot, tokens: &TokenSet) -> Result<()> {
        self.write(
            &self.slot_key(account_id, slot),
            &secret_json(&StoredTokens::of(tokens))?,
        )
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
mod tests;
