//! Where secrets are kept: the [`SecretStore`] trait, the OS keychain ([`KeyringStore`]) and
//! an in-memory store for tests ([`MemoryStore`]), with the size limit of a keychain's entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Whether the entry exists, without reading its value where the keychain allows.
    fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }
    /// The largest value one entry holds, in bytes of its UTF-16 encoding; `None` when the
    /// platform's limit (if any) is the only one.
    fn entry_limit(&self) -> Option<usize> {
        None
    }
    /// Gets ready for calls to come (a Secret Service session is opened), so a caller can
    /// have that done while it does other work; failures are left for those calls to report.
    fn prepare(&self) {}
    /// Fails as the next write would for a keychain that is locked (and cannot be unlocked
    /// now) or absent; one cheap question, where the keychain allows it.
    fn check_writable(&self) -> Result<()> {
        self.contains(SERVICE).map(|_| ())
    }
}

/// Windows Credential Manager's largest credential blob (`CRED_MAX_CREDENTIAL_BLOB_SIZE`),
/// which holds the value as UTF-16.
pub const WINDOWS_ENTRY_LIMIT: usize = 2560;

/// The entry limit of the platform's keychain.
pub(super) const PLATFORM_ENTRY_LIMIT: Option<usize> = if cfg!(windows) {
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

    fn contains(&self, key: &str) -> Result<bool> {
        self.session
            .contains(&self.service, key)
            .map_err(keychain_error)
    }

    fn prepare(&self) {
        self.session.open();
    }

    fn check_writable(&self) -> Result<()> {
        self.session.check_unlocked().map_err(keychain_error)
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
    /// Reads (`get`) through this store and its clones.
    reads: Arc<std::sync::atomic::AtomicUsize>,
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

    /// Another handle on the same entries, as a second process sees the one keychain: locked
    /// on its own ([`Self::set_locked`]), counting its own reads ([`Self::reads`]).
    pub fn view(&self) -> MemoryStore {
        MemoryStore {
            entries: Arc::clone(&self.entries),
            limit: self.limit,
            ..MemoryStore::default()
        }
    }

    /// How many reads went through this handle (and its clones).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
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
        let entries = self.check()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(entries.get(key).cloned())
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

pub(super) fn utf16_bytes(text: &str) -> usize {
    text.chars().map(|c| c.len_utf16() * 2).sum()
}
