//! The freedesktop Secret Service (gnome-keyring, KWallet, KeePassXC) as one long-lived
//! session per process: one D-Bus connection and one encrypted (Diffie–Hellman) session,
//! opened on first use and reused for every entry, instead of a new connection and key
//! exchange per read or write. Each connection a daemon sees costs it a key exchange and
//! client state it keeps until the connection ends (gnome-keyring never frees part of it), so
//! a short `tessera` process makes one, and a long-lived app one in total.
//!
//! Entries are the items `keyring` 3 writes (attributes `service`, `username`,
//! `target = default`, `application = rust-keyring`, in the default collection), so entries
//! written by earlier builds are found and earlier builds find ours.
//!
//! A call that fails at the D-Bus level (the daemon restarted, so our session is gone; the
//! connection broke; no reply in time) is retried once on a fresh connection. Every operation
//! is idempotent, so a retry after a write that did land is harmless.

use std::collections::HashMap;
use std::sync::Mutex;

use dbus_secret_service::{EncryptionType, Error, Item, SecretService};

const TARGET: &str = "default";
const APPLICATION: &str = "rust-keyring";
/// The label `keyring` 3 gives its items, so they look alike in a keyring viewer.
const KEYRING_VERSION: &str = "3.6.3";
/// How long an unlock prompt may wait for the person, in seconds; then it is dismissed and the
/// call fails as a locked keychain does. Without a bound, a prompt that is never shown (no
/// prompter: a headless session, or a daemon restarted after a crash) waits forever.
const PROMPT_WAIT_SECS: u64 = 120;

/// One Secret Service session, opened lazily and reopened after a D-Bus failure.
#[derive(Default)]
pub(crate) struct Session {
    open: Mutex<Option<SecretService>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

/// What went wrong, for `vault::keychain_error` to word.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The item or collection is locked and unlocking it was refused, or there is no
    /// Secret Service to talk to.
    NoAccess(Error),
    /// Several items match one entry (written by another tool with the same attributes).
    Ambiguous(usize),
    Platform(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Locked | Error::NoResult | Error::Prompt | Error::Unavailable => {
                Failure::NoAccess(e)
            }
            other => Failure::Platform(other),
        }
    }
}

impl Session {
    pub(crate) fn get(&self, service: &str, user: &str) -> Result<Option<String>, Failure> {
        self.with(|ss| match unique_item(ss, service, user)? {
            Some(item) => {
                let bytes = item.get_secret()?;
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| Failure::Platform(Error::UnsupportedSecretFormat))
            }
            None => Ok(None),
        })
    }

    pub(crate) fn set(&self, service: &str, user: &str, secret: &str) -> Result<(), Failure> {
        self.with(|ss| {
            if let Some(item) = unique_item(ss, service, user)? {
                return Ok(item.set_secret(secret.as_bytes(), "text/plain")?);
            }
            let collection = ss.get_default_collection()?;
            collection.ensure_unlocked()?;
            let attributes = HashMap::from([
                ("service", service),
                ("username", user),
                ("target", TARGET),
                ("application", APPLICATION),
            ]);
            let label = format!("{user}@{service}:{TARGET} (keyring v{KEYRING_VERSION})");
            collection.create_item(&label, attributes, secret.as_bytes(), true, "text/plain")?;
            Ok(())
        })
    }

    /// Fails unless the default collection (where new entries go) is unlocked or can be
    /// unlocked now.
    pub(crate) fn check_unlocked(&self) -> Result<(), Failure> {
        self.with(|ss| Ok(ss.get_default_collection()?.ensure_unlocked()?))
    }

    /// Whether the entry exists (one round trip: a search, and an unlock if it is locked).
    pub(crate) fn contains(&self, service: &str, user: &str) -> Result<bool, Failure> {
        self.with(|ss| Ok(unique_item(ss, service, user)?.is_some()))
    }

    /// Removes the entry; an absent entry is not an error.
    pub(crate) fn delete(&self, service: &str, user: &str) -> Result<(), Failure> {
        self.with(|ss| match unique_item(ss, service, user)? {
            Some(item) => Ok(item.delete()?),
            None => Ok(()),
        })
    }

    /// Opens the session now if it is not open yet; a failure is left for the next call.
    pub(crate) fn open(&self) {
        let _ = self.with(|_| Ok(()));
    }

    fn with<T>(&self, op: impl Fn(&SecretService) -> Result<T, Failure>) -> Result<T, Failure> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let ss = match open.take() {
                Some(ss) => ss,
                None => SecretService::connect_with_max_prompt_timeout(
                    EncryptionType::Dh,
                    PROMPT_WAIT_SECS,
                )?,
            };
            match op(&ss) {
                Err(Failure::Platform(Error::Dbus(e))) => {
                    if attempts == 2 {
                        return Err(Failure::Platform(Error::Dbus(e)));
                    }
                }
                result => {
                    *open = Some(ss);
                    return result;
                }
            }
        }
    }
}

/// The one item for `service`/`user`, unlocked; `None` when there is none.
fn unique_item<'a>(
    ss: &'a SecretService,
    service: &str,
    user: &str,
) -> Result<Option<Item<'a>>, Failure> {
    let found = ss.search_items(HashMap::from([
        ("service", service),
        ("username", user),
        ("target", TARGET),
    ]))?;
    let count = found.unlocked.len() + found.locked.len();
    if count > 1 {
        return Err(Failure::Ambiguous(count));
    }
    if let Some(item) = found.unlocked.into_iter().next() {
        return Ok(Some(item));
    }
    match found.locked.into_iter().next() {
        Some(item) => {
            item.unlock()?;
            Ok(Some(item))
        }
        None => Ok(None),
    }
}
