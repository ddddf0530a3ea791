//! Accounts and the data directory's state file.
//!
//! `tessera.json` holds the registered providers and the account metadata — who, at which
//! provider, in which organizations, whether the grant still works — and never a secret. It
//! is versioned, replaced atomically, and every read-modify-write holds `tessera.lock`, so
//! the desktop app and any number of `tessera` processes can share one data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{FileLock, create_private_dir, make_private, write_atomic};
use crate::jwt::DecodedJwt;
use crate::provider::ProviderConfig;
use crate::vault::Slot;

/// The state file format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Whether an account's grant still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// The provider refused the refresh token (`invalid_grant`); sign in again.
    NeedsSignIn,
}

/// Why a provider holds an account back although its sign-in worked: the tokens are real
/// and refresh, but the provider's APIs accept them only from clients that allow restricted
/// users, until the person finishes what the provider asks at the provider (Stack Auth's
/// restricted users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// The project requires a verified e-mail address.
    EmailNotVerified,
    /// An administrator of the project (or one of its sign-up rules) restricted the account.
    ByAdministrator,
    /// A reason this version of Tessera does not know.
    Other,
}

impl Restriction {
    /// What the person can do about it, for front ends.
    pub fn hint(self) -> &'static str {
        match self {
            Restriction::EmailNotVerified => {
                "verify your e-mail at the provider to finish signing up, then refresh"
            }
            Restriction::ByAdministrator => {
                "an administrator of the project restricted this account"
            }
            Restriction::Other => "the provider restricts this account",
        }
    }
}

/// One person signed in at one provider. Contains no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub orgs: Vec<String>,
    pub status: AccountStatus,
    pub created_at: u64,
    pub updated_at: u64,
    /// When the stored access token expires (Unix seconds), if known.
    pub access_expires_at: Option<u64>,
    pub scope: Option<String>,
    /// The organization used when none is named (Auth0: the org of the latest org sign-in).
    #[serde(default)]
    pub current_org: Option<String>,
    /// Organizations with their own sign-in (Auth0 org-bound token sets).
    #[serde(default)]
    pub signed_in_orgs: Vec<String>,
    /// Display names of organizations, by id, where the provider told them.
    #[serde(default)]
    pub org_names: std::collections::BTreeMap<String, String>,
    /// Set while the provider holds the account back (see [`Restriction`]); the latest
    /// sign-in or refresh decides.
    #[serde(default)]
    pub restriction: Option<Restriction>,
    /// A write in progress that touches both the keychain and this record: if its process
    /// died, the next one completes or undoes it (see the engine's `txn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingWrite>,
    /// Slots ([`Slot::name`]) whose token sets live on the keychain's shelf rather than in
    /// entries of their own (see `vault::Shelf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shelved: Vec<String>,
}

/// Which two-part write an account is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingWrite {
    /// A first sign-in: the record is written, its keychain entry may not be yet.
    SignIn,
    /// A sign-out: its keychain entries may be partly deleted already.
    SignOut,
}

impl Account {
    /// Whether `slot`'s token set lives on the keychain's shelf.
    pub fn is_shelved(&self, slot: &Slot) -> bool {
        self.shelved.contains(&slot.name())
    }

    /// A new, active account with nothing known about the person yet.
    pub fn new(provider: &str, issuer: &str, subject: &str, now: u64) -> Self {
        Account {
            id: Account::id_for(provider, subject),
            provider: provider.to_string(),
            issuer: issuer.to_string(),
            subject: subject.to_string(),
            email: None,
            name: None,
            orgs: Vec::new(),
            status: AccountStatus::Active,
            created_at: now,
            updated_at: now,
            access_expires_at: None,
            scope: None,
            current_org: None,
            signed_in_orgs: Vec::new(),
            org_names: Default::default(),
            restriction: None,
            pending: None,
            shelved: Vec::new(),
        }
    }

    /// The id a new account of `subject` at `provider` gets: the whole SHA-256 of both, so
    /// no provider can grind a subject that collides with another account. (Accounts stored
    /// with the 40-bit ids of earlier versions keep them: a sign-in finds its account by
    /// provider and subject.)
    pub fn id_for(provider: &str, subject: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{provider}\n{subject}").as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("acc-{hex}")
    }

    /// Updates who the account is from (verified) ID token claims.
    pub(crate) fn absorb_claims(&mut self, id_token: &DecodedJwt) {
        if let Some(email) = id_token.claim_str("email") {
            self.email = Some(email.to_string());
        }
        if let Some(name) = id_token
            .claim_str("name")
            .or_else(|| id_token.claim_str("preferred_username"))
        {
            self.name = Some(name.to_string());
        }
        for org in orgs_from_claims(&id_token.payload) {
            if !self.orgs.contains(&org) {
                self.orgs.push(org);
            }
        }
        if let (Some(id), Some(name)) =
            (id_token.claim_str("org_id"), id_token.claim_str("org_name"))
        {
            self.org_names.insert(id.to_string(), name.to_string());
        }
    }

    /// The organization `query` names: an id, or a display name (case-insensitive).
    pub fn resolve_org(&self, query: &str) -> Option<String> {
        if self.orgs.iter().any(|o| o == query) {
            return Some(query.to_string());
        }
        self.org_names
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(query))
            .map(|(id, _)| id.clone())
    }

    /// Whether `query` names this account: its id, or exactly its email or subject.
    pub fn matches(&self, query: &str) -> bool {
        self.id == query
            || self.subject == query
            || self
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(query))
    }
}

/// Organizations named by common claims: `organizations` (ids or objects with `id`),
/// `org_id`, `orgs`.
pub fn orgs_from_claims(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut orgs: Vec<String> = Vec::new();
    for key in ["organizations", "orgs"] {
        if let Some(Value::Array(items)) = claims.get(key) {
            for item in items {
                let id = match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("id").and_then(Value::as_str).map(String::from),
                    _ => None,
                };
                orgs.extend(id);
            }
        }
    }
    if let Some(org) = claims.get("org_id").and_then(Value::as_str) {
        orgs.push(org.to_string());
    }
    orgs.dedup();
    orgs
}

/// The state file's name in the data directory.
pub(crate) const STATE_FILE: &str = "tessera.json";

/// The contents of `tessera.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Random id of this data directory; prefixes its keychain entries.
    pub namespace: String,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Providers whose credentials live on the keychain's shelf (see `vault::Shelf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shelved_credentials: Vec<String>,
}

impl State {
    pub fn provider(&self, name: &str) -> Result<&ProviderConfig> {
        self.providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownProvider(name.to_string()))
    }

    /// The one account `query` names (id, email or subject).
    pub fn find_account(&self, query: &str) -> Result<&Account> {
        if let Some(a) = self.accounts.iter().find(|a| a.id == query) {
            return Ok(a);
        }
        let found: Vec<&Account> = self.accounts.iter().filter(|a| a.matches(query)).collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::UnknownAccount(query.to_string())),
            many => Err(Error::AmbiguousAccount {
                query: query.to_string(),
                candidates: many
                    .iter()
                    .map(|a| format!("{} at {}", a.id, a.provider))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Whether provider `name`'s credential lives on the keychain's shelf.
    pub fn credential_shelved(&self, name: &str) -> bool {
        self.shelved_credentials.iter().any(|n| n == name)
    }

    /// The account with id `id` (exactly; no e-mail or subject).
    pub fn account_by_id(&self, id: &str) -> Result<&Account> {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::UnknownAccount(id.to_string()))
    }

    pub fn account_mut(&mut self, id: &str) -> Result<&mut Account> {
        self.accounts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::UnknownAccount(id.to_string()))
    }
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    parsed: Arc<Mutex<Option<Parsed>>>,
}

/// The state last parsed, with the digest of the bytes it was parsed from: reading an
/// unchanged `tessera.json` again costs a read and a hash, not a parse; and with the file's
/// identity then, when it can be trusted (see [`FileIdentity`]), reading it again costs a
/// `stat` and no read.
struct Parsed {
    digest: [u8; 32],
    state: Arc<State>,
    identity: Option<FileIdentity>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parsed")
    }
}

/// What changes whenever `tessera.json` does: Tessera replaces it by a rename (a new inode),
/// and an edit in place changes its modification time. Modification times are coarse (a
/// clock tick), so, as git does with its index, an identity is only trusted when the bytes
/// were read well after the file was last modified: a write racing that read would then
/// carry a later time. A file system that keeps whole seconds only (no fraction in the time)
/// is never trusted: two writes within a second could not be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    inode: u64,
    device: u64,
    size: u64,
    modified: std::time::SystemTime,
    changed: (i64, i64),
}

/// How long after its last modification a file's identity is trusted (many clock ticks).
const RACY: std::time::Duration = std::time::Duration::from_millis(50);

impl FileIdentity {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        Some(FileIdentity {
            inode: meta.ino(),
            device: meta.dev(),
            size: meta.len(),
            modified: meta.modified().ok()?,
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<FileIdentity> {
        None
    }

    /// The identity of the file read at `read_at`, if it can be trusted (see the type's docs).
    fn trusted(meta: &std::fs::Metadata, read_at: std::time::SystemTime) -> Option<FileIdentity> {
        let identity = FileIdentity::of(meta)?;
        let fine_grained = identity
            .modified
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|t| t.subsec_nanos() != 0);
        (fine_grained && read_at.duration_since(identity.modified).ok()? > RACY).then_some(identity)
    }
}

impl DataDir {
    /// Opens (and on first use creates) a data directory, private to the user (0700; an
    /// existing one is tightened).
    pub fn open(root: &Path) -> Result<Self> {
        create_private_dir(root)?;
        let dir = DataDir {
            root: root.to_path_buf(),
            parsed: Arc::default(),
        };
        // Written once, with the keychain namespace; after that opening only reads.
        if dir.state_file().exists() {
            make_private(&dir.state_file())?;
            dir.read()?;
        } else {
            dir.update(|_| Ok(()))?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The lock file that serializes refreshes of one account across processes.
    pub fn refresh_lock(&self, account_id: &str) -> PathBuf {
        self.root.join("locks").join(format!("{account_id}.lock"))
    }

    /// The lock of the keychain's shelf (`vault::Shelf`), held while it is read and rewritten.
    pub fn shelf_lock(&self) -> PathBuf {
        self.root.join("locks").join("shelf.lock")
    }

    /// The lock of a provider name, held while it is added or removed.
    pub fn provider_lock(&self, name: &str) -> PathBuf {
        self.refresh_lock(&format!("provider-{}", crate::fsutil::short_hash(name)))
    }

    fn state_file(&self) -> PathBuf {
        self.root.join(STATE_FILE)
    }

    /// Reads the current state.
    pub fn read(&self) -> Result<State> {
        Ok(State::clone(&self.read_with_digest()?.0))
    }

    /// The current state, shared (no copy of it is made).
    pub(crate) fn snapshot(&self) -> Result<Arc<State>> {
        Ok(self.read_with_digest()?.0)
    }

    /// Reads the current state, with the SHA-256 of the bytes it was read from (`None`
    /// while there is no file yet).
    pub(crate) fn read_with_digest(&self) -> Result<(Arc<State>, Option<[u8; 32]>)> {
        self.read_trusting(true)
    }

    /// [`Self::read_with_digest`]; the bytes are read whatever the file's identity unless
    /// `trust_identity`.
    fn read_trusting(&self, trust_identity: bool) -> Result<(Arc<State>, Option<[u8; 32]>)> {
        let path = self.state_file();
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Arc::new(Self::empty()), None));
            }
            Err(e) => return Err(Error::storage(&format!("read {}", path.display()), e)),
        };
        if trust_identity
            && let Ok(parsed) = self.parsed.lock()
            && let Some(p) = parsed.as_ref()
            && p.identity.is_some()
            && p.identity == FileIdentity::of(&meta)
        {
            return Ok((Arc::clone(&p.state), Some(p.digest)));
        }
        let read_at = std::time::SystemTime::now();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Arc::new(Self::empty()), None));
            }
            Err(e) => return Err(Error::storage(&format!("read {}", path.display()), e)),
        };
        // The identity of what was read: unchanged metadata before and after the read.
        let identity = std::fs::metadata(&path)
            .ok()
            .filter(|after| FileIdentity::of(after) == FileIdentity::of(&meta))
            .and_then(|_| FileIdentity::trusted(&meta, read_at));
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Ok(mut parsed) = self.parsed.lock()
            && let Some(p) = parsed.as_mut()
            && p.digest == digest
        {
            p.identity = identity;
            return Ok((Arc::clone(&p.state), Some(digest)));
        }
        let state = Arc::new(Self::parse(&path, &bytes)?);
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some(Parsed {
                digest,
                state: Arc::clone(&state),
                identity,
            });
        }
        Ok((state, Some(digest)))
    }

    /// The state of a data directory without `tessera.json` yet.
    fn empty() -> State {
        State {
            version: STATE_VERSION,
            namespace: new_namespace(),
            providers: Vec::new(),
            accounts: Vec::new(),
            shelved_credentials: Vec::new(),
        }
    }

    /// `tessera.json`'s bytes as a state, checked.
    fn parse(path: &Path, bytes: &[u8]) -> Result<State> {
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| Error::Storage(format!("{} is damaged: {e}", path.display())))?;
        let mut names = std::collections::HashSet::new();
        if let Some(p) = state.providers.iter().find(|p| !names.insert(&p.name)) {
            return Err(Error::Storage(format!(
                "{} is damaged: two providers are named \"{}\"",
                path.display(),
                p.name
            )));
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(a) = state.accounts.iter().find(|a| !ids.insert(&a.id)) {
            return Err(Error::Storage(format!(
                "{} is damaged: two accounts have the id {}",
                path.display(),
                a.id
            )));
        }
        if state.version > STATE_VERSION {
            return Err(Error::Storage(format!(
                "{} was written by a newer Tessera (format {}); update Tessera",
                path.display(),
                state.version
            )));
        }
        Ok(state)
    }

    /// Applies `change` under the lock and writes the result atomically. Nothing is written
    /// when `change` fails.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.root.join("tessera.lock"))?;
        // What is changed is read from the file itself, never taken on its identity's word.
        let mut state = State::clone(&self.read_trusting(false)?.0);
        let out = change(&mut state)?;
        state.version = STATE_VERSION;
        let bytes =
            serde_json::to_vec_pretty(&state).map_err(|e| Error::storage("encode state", e))?;
        write_atomic(&self.state_file(), &bytes)?;
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some(Parsed {
                digest: Sha256::digest(&bytes).into(),
                state: Arc::new(state),
                identity: None,
            });
        }
        Ok(out)
    }
}

fn new_namespace() -> String {
    let bytes: [u8; 6] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, sub: &str, email: &str) -> Account {
        Account {
            id: id.into(),
            email: Some(email.into()),
            ..Account::new("p", "i", sub, 0)
        }
    }

    #[test]
    fn state_persists_and_a_failed_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let ns = data.read().unwrap().namespace;
        data.update(|s| {
            s.accounts.push(account("a1", "alice", "alice@example.com"));
            Ok(())
        })
        .unwrap();
        let before = std::fs::read(dir.path().join("tessera.json")).unwrap();
        let r: Result<()> = data.update(|s| {
            s.accounts.clear();
            Err(Error::Storage("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(
            std::fs::read(dir.path().join("tessera.json")).unwrap(),
            before
        );
        let state = data.read().unwrap();
        assert_eq!(state.namespace, ns, "the namespace is stable");
        assert_eq!(state.accounts.len(), 1);
    }

    #[test]
    fn a_state_kept_by_its_files_identity_gives_way_to_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let other = DataDir::open(dir.path()).unwrap();
        let path = dir.path().join("tessera.json");
        data.update(|s| {
            s.accounts.push(account("a1", "alice", "alice@example.com"));
            Ok(())
        })
        .unwrap();
        std::thread::sleep(RACY * 2);
        assert_eq!(data.read().unwrap().accounts[0].id, "a1");
        assert!(
            data.parsed
                .lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .identity
                .is_some(),
            "trusted once read well after its last change"
        );
        // Another process's write (a rename), then an edit in place of the same length.
        other
            .update(|s| {
                s.accounts[0].id = "a2".into();
                Ok(())
            })
            .unwrap();
        assert_eq!(data.read().unwrap().accounts[0].id, "a2");
        std::thread::sleep(RACY * 2);
        assert_eq!(data.read().unwrap().accounts[0].id, "a2");
        let edited = String::from_utf8(std::fs::read(&path).unwrap())
            .unwrap()
            .replace("\"a2\"", "\"a3\"");
        std::fs::write(&path, edited).unwrap();
        assert_eq!(data.read().unwrap().accounts[0].id, "a3");
        // A change is made to what the file holds, not to what its identity promised.
        std::thread::sleep(RACY * 2);
        data.read().unwrap();
        let edited = String::from_utf8(std::fs::read(&path).unwrap())
            .unwrap()
            .replace("\"a3\"", "\"a4\"");
        std::fs::write(&path, &edited).unwrap();
        data.update(|s| {
            assert_eq!(s.accounts[0].id, "a4");
            Ok(())
        })
        .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dev.tessera");
        let data = DataDir::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("tessera.json")), 0o600);
        assert_eq!(mode(&root.join("tessera.lock")), 0o600);
        drop(FileLock::acquire(&data.refresh_lock("acc-1")).unwrap());
        assert_eq!(mode(&root.join("locks")), 0o700);
        assert_eq!(mode(&data.refresh_lock("acc-1")), 0o600);

        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(&root, open).unwrap();
        std::fs::set_permissions(
            root.join("tessera.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        DataDir::open(&root).unwrap();
        assert_eq!(
            mode(&root),
            0o700,
            "an existing data directory is tightened"
        );
        assert_eq!(mode(&root.join("tessera.json")), 0o600);
    }

    #[test]
    fn newer_or_damaged_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("tessera.json"),
            br#"{"version":99,"namespace":"x"}"#,
        )
        .unwrap();
        assert!(
            data.read()
                .unwrap_err()
                .to_string()
                .contains("newer Tessera")
        );
        std::fs::write(dir.path().join("tessera.json"), b"{trunc").unwrap();
        assert_eq!(data.read().unwrap_err().code(), "storage");
    }

    #[test]
    fn account_lookup_by_id_email_or_subject() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.update(|s| {
            s.accounts.push(account("a1", "alice", "alice@example.com"));
            s.accounts
                .push(account("a2", "alice2", "alice@example.com"));
            Ok(())
        })
        .unwrap();
        let s = data.read().unwrap();
        assert_eq!(s.find_account("a2").unwrap().id, "a2");
        assert_eq!(s.find_account("alice").unwrap().id, "a1");
        assert_eq!(
            s.find_account("ALICE@example.com").unwrap_err().code(),
            "ambiguous_account"
        );
        assert_eq!(
            s.find_account("nobody").unwrap_err().code(),
            "unknown_account"
        );
    }

    #[test]
    fn orgs_from_common_claims() {
        let c = serde_json::json!({"organizations":["acme",{"id":"globex"}],"org_id":"initech"});
        assert_eq!(
            orgs_from_claims(c.as_object().unwrap()),
            ["acme", "globex", "initech"]
        );
    }
}
