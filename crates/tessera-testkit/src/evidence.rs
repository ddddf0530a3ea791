//! Evidence for the secret scan (`tests/secret-scan`, run by `scripts/test` after every
//! suite). With `TESSERA_EVIDENCE_DIR` set, tests keep what a user's machine would hold or show
//! there: data directories, the command line's output, the answers the app's commands gave the
//! web view. The providers (`tests/idp`, `tests/fakes`) append every token they issue to
//! `issued.txt` in the same directory; the scan then searches the evidence for each of them.
//!
//! Output that is *meant* to carry a token (`tessera token`) is kept apart, under `expected/`:
//! the scan must find issued tokens there, which proves it can see what it looks for.
//! Without the variable nothing is kept and data directories are removed as usual.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The evidence directory, when the secret scan collects.
pub fn evidence_dir() -> Option<PathBuf> {
    std::env::var_os("TESSERA_EVIDENCE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// A fresh data directory: a temporary one, or, while evidence is collected, one kept under
/// `data/` for the scan.
pub fn data_dir() -> tempfile::TempDir {
    let Some(root) = evidence_dir() else {
        return tempfile::tempdir().expect("creating a temporary data directory");
    };
    let parent = root.join("data");
    std::fs::create_dir_all(&parent).expect("creating the evidence data directory");
    tempfile::Builder::new()
        .prefix("data-")
        .disable_cleanup(true)
        .tempdir_in(parent)
        .expect("creating a data directory under the evidence directory")
}

/// What kind of output a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Must not contain any issued secret (logs, listings, IPC answers).
    Clean,
    /// Carries a token by design (`tessera token`): the scan's positive control.
    CarriesToken,
}

/// Keeps `bytes` (what `what` produced) as evidence, when evidence is collected.
pub fn record(kind: Evidence, what: &str, bytes: &[u8]) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let Some(root) = evidence_dir() else {
        return;
    };
    let dir = root.join(match kind {
        Evidence::Clean => "output",
        Evidence::CarriesToken => "expected",
    });
    std::fs::create_dir_all(&dir).expect("creating the evidence directory");
    let label: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}-{label}.txt", std::process::id()));
    std::fs::write(&path, bytes).expect("writing evidence");
}
