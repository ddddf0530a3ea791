//! What the adversarial suite (`hostile_input`, `faults`, `properties`) shares: a `Tessera`
//! over a temporary data directory, the scripted provider registered as [`PROVIDER`], an
//! inspectable keychain that can be locked or made to fail at a chosen write
//! ([`Keychain`]), and [`Snapshot`]s of everything stored, which show that a hostile case
//! changed nothing.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tessera_core::clock::ShiftedClock;
use tessera_core::flow::DEEP_LINK_REDIRECT;
use tessera_core::http::HttpConfig;
use tessera_core::vault::SecretStore;
use tessera_core::{Account, Error, Options, ProviderConfig, Result, SecretString, Tessera};
use tessera_testkit::ScriptedIdp;
use tessera_testkit::scripted::{CLIENT_ID, Refresh};

/// The name the scripted provider is registered under.
pub const PROVIDER: &str = "p";

/// Timeouts short enough that a stalled provider costs a test one second.
pub fn short_http() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(1),
    }
}

/// A keychain the test can read whole, lock, break at a chosen write, or hold writes in.
#[derive(Default)]
pub struct Keychain {
    entries: Mutex<BTreeMap<String, String>>,
    /// Writes and deletes that reached the keychain, ever.
    changes: std::sync::atomic::AtomicUsize,
    faults: Mutex<Faults>,
    held: (Mutex<bool>, Condvar),
}

#[derive(Default)]
struct Faults {
    locked: bool,
    /// Writes (`set`) counted since [`Keychain::fail_writes`]; those listed fail.
    writes: usize,
    failing: BTreeSet<usize>,
    /// From this write on, every call fails (the Secret Service died).
    dead_from: Option<usize>,
    deletes_fail: bool,
}

impl Keychain {
    pub fn contents(&self) -> BTreeMap<String, String> {
        self.entries.lock().unwrap().clone()
    }

    /// How many writes and deletes reached the keychain so far.
    pub fn changes(&self) -> usize {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every call fails like a locked keychain, or works again.
    pub fn lock(&self, locked: bool) {
        self.faults.lock().unwrap().locked = locked;
    }

    /// From now on, the `nth` writes (1-based) fail; the others work.
    pub fn fail_writes(&self, nth: &[usize]) {
        let mut f = self.faults.lock().unwrap();
        f.writes = 0;
        f.failing = nth.iter().copied().collect();
        f.dead_from = None;
    }

    /// From now on, the `nth` write (1-based) and every call after it fail.
    pub fn die_at_write(&self, nth: usize) {
        let mut f = self.faults.lock().unwrap();
        f.writes = 0;
        f.failing.clear();
        f.dead_from = Some(nth);
    }

    /// Every call fails from now on: the Secret Service is gone.
    pub fn die_now(&self) {
        self.die_at_write(0);
    }

    /// Deletes fail (reads and writes work).
    pub fn fail_deletes(&self) {
        self.faults.lock().unwrap().deletes_fail = true;
    }

    /// While held, a write waits (blocking its thread, as a slow Secret Service does) until
    /// writes are let go. Only on a multi-threaded runtime.
    pub fn hold_writes(&self, held: bool) {
        *self.held.0.lock().unwrap() = held;
        self.held.1.notify_all();
    }

    pub fn heal(&self) {
        *self.faults.lock().unwrap() = Faults::default();
    }

    fn check(&self, write: bool) -> Result<()> {
        let mut f = self.faults.lock().unwrap();
        if f.locked {
            return Err(Error::Keychain("the keychain is locked".into()));
        }
        if let Some(dead) = f.dead_from
            && f.writes + usize::from(write) >= dead
        {
            f.writes += usize::from(write);
            return Err(Error::Keychain("the Secret Service went away".into()));
        }
        if write {
            f.writes += 1;
            if f.failing.contains(&f.writes) {
                return Err(Error::Keychain(format!("write {} failed", f.writes)));
            }
        }
        Ok(())
    }
}

impl SecretStore for Keychain {
    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        self.check(false)?;
        Ok(self.entries.lock().unwrap().get(key).map(SecretString::new))
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let held = self.held.0.lock().unwrap();
        if *held {
            // The worker hands its other duties (timers, I/O) over while this one waits, as
            // only a multi-threaded runtime can (the one test that holds writes uses one).
            tokio::task::block_in_place(|| drop(self.held.1.wait_while(held, |held| *held)));
        }
        self.check(true)?;
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries
            .lock()
            .unwrap()
            .insert(key.into(), value.expose_secret().into());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check(false)?;
        if self.faults.lock().unwrap().deletes_fail {
            return Err(Error::Keychain("the keychain refused to delete".into()));
        }
        if self.entries.lock().unwrap().remove(key).is_some() {
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A `Tessera` with the scripted provider registered as [`PROVIDER`].
pub struct Rig {
    pub idp: ScriptedIdp,
    pub tessera: Arc<Tessera>,
    pub keychain: Arc<Keychain>,
    pub clock: ShiftedClock,
    pub dir: tempfile::TempDir,
    pub http: HttpConfig,
}

pub async fn rig() -> Rig {
    rig_with(Refresh::Plain, HttpConfig::default()).await
}

pub async fn rig_with(refresh: Refresh, http: HttpConfig) -> Rig {
    let idp = ScriptedIdp::start_with(refresh).await;
    let dir = tessera_testkit::evidence::data_dir();
    let keychain = Arc::new(Keychain::default());
    let clock = ShiftedClock::default();
    let tessera = open(dir.path(), &keychain, &clock, http);
    tessera
        .add_provider(ProviderConfig::new(PROVIDER, &idp.issuer, CLIENT_ID), None)
        .await
        .unwrap();
    Rig {
        idp,
        tessera,
        keychain,
        clock,
        dir,
        http,
    }
}

fn open(
    dir: &Path,
    keychain: &Arc<Keychain>,
    clock: &ShiftedClock,
    http: HttpConfig,
) -> Arc<Tessera> {
    Arc::new(
        Tessera::open(Options {
            data_dir: dir.to_path_buf(),
            store: keychain.clone(),
            clock: Arc::new(clock.clone()),
            http,
        })
        .unwrap(),
    )
}

impl Rig {
    /// Another `Tessera` over the same data directory and keychain, with empty in-memory
    /// caches (no JWKS, no discovery): the next process.
    pub fn reopen(&self) -> Arc<Tessera> {
        open(self.dir.path(), &self.keychain, &self.clock, self.http)
    }

    /// A new process that has no provider key set, in memory or kept on disk: the first
    /// verification fetches it.
    pub fn reopen_without_key_sets(&self) -> Arc<Tessera> {
        for kept in walk(self.dir.path()) {
            if kept
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("jwks-"))
            {
                std::fs::remove_file(kept).unwrap();
            }
        }
        self.reopen()
    }

    /// Starts a deep-link sign-in: its state and nonce.
    pub async fn start(&self) -> (String, String) {
        let start = self
            .tessera
            .start_sign_in(PROVIDER, DEEP_LINK_REDIRECT, &[])
            .await
            .unwrap();
        let nonce = tessera_core::flow::query_param(&start.authorization_url, "nonce").unwrap();
        (start.flow_id, nonce)
    }

    /// Signs `sub` in through the deep link.
    pub async fn sign_in(&self, sub: &str) -> Account {
        self.try_sign_in(&self.tessera, sub).await.unwrap()
    }

    /// [`Self::sign_in`] through `tessera` (another process), its failure returned.
    pub async fn try_sign_in(&self, tessera: &Tessera, sub: &str) -> tessera_core::Result<Account> {
        let start = tessera
            .start_sign_in(PROVIDER, DEEP_LINK_REDIRECT, &[])
            .await?;
        let callback = self.idp.authorize(&start.authorization_url, sub);
        tessera.complete_sign_in(&callback).await
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(self.dir.path(), self.keychain.contents())
    }

    /// The account's stored token set, wherever the keychain holds it.
    pub fn stored(&self, account_id: &str) -> Option<serde_json::Value> {
        let contents = self.keychain.contents();
        tessera_testkit::stored_tokens(self.dir.path(), account_id, |key| {
            contents.get(key).cloned()
        })
    }

    pub fn refresh_token(&self, account_id: &str) -> String {
        self.stored(account_id).unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Files of the data directory holding a token, code or secret the provider issued
    /// (there must be none: secrets live only in the keychain).
    pub fn leaked(&self) -> Vec<String> {
        leaked_in(self.dir.path(), &self.idp.issued())
    }
}

/// Files under `dir` containing any of `secrets`, as `path: secret-prefix`.
pub fn leaked_in(dir: &Path, secrets: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    for path in walk(dir) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            if text.contains(s.as_str()) {
                hits.push(format!("{}: {}…", path.display(), &s[..8]));
            }
        }
    }
    hits
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Everything stored: the data directory's files and the keychain's entries. Lock files
/// (`tessera.lock`, `locks/`) and `cache/` (discovery documents, the journal of started
/// sign-ins' state hashes) are left out: they hold no account and change on any read.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub keychain: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn take(dir: &Path, keychain: BTreeMap<String, String>) -> Snapshot {
        let files = walk(dir)
            .into_iter()
            .filter_map(|path| {
                let rel = path.strip_prefix(dir).ok()?.to_path_buf();
                let first = rel.components().next()?.as_os_str().to_str()?.to_string();
                if matches!(first.as_str(), "cache" | "locks" | "tessera.lock") {
                    return None;
                }
                Some((rel, std::fs::read(&path).ok()?))
            })
            .collect();
        Snapshot { files, keychain }
    }

    /// What differs from `other`, for assertion messages.
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let files: BTreeSet<_> = self.files.keys().chain(other.files.keys()).collect();
        for f in files {
            if self.files.get(f) != other.files.get(f) {
                out.push(format!("file {}", f.display()));
            }
        }
        let keys: BTreeSet<_> = self.keychain.keys().chain(other.keychain.keys()).collect();
        for k in keys {
            if self.keychain.get(k) != other.keychain.get(k) {
                out.push(format!("keychain {k}"));
            }
        }
        out
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot({} files, {} keychain entries)",
            self.files.len(),
            self.keychain.len()
        )
    }
}

/// Fails with the case's name and what changed when `after` differs from `before`.
pub fn assert_unchanged(case: &str, before: &Snapshot, after: &Snapshot) {
    assert!(
        before == after,
        "{case}: stored data changed: {:?}",
        before.diff(after)
    );
}

/// The outcome of a case that must fail: its error, or a panic message.
pub async fn outcome<T>(
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> std::result::Result<Error, String>
where
    T: std::fmt::Debug + Send + 'static,
{
    match tokio::spawn(future).await {
        Ok(Err(e)) => Ok(e),
        Ok(Ok(v)) => Err(format!("succeeded: {v:?}")),
        Err(panic) => Err(format!("panicked: {panic}")),
    }
}
