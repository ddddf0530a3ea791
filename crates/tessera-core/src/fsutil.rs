//! File primitives the data directory relies on: atomic replacement (a reader sees the old
//! file or the new one, never a torn one) and advisory locks shared between processes.
//!
//! Everything they create is private to the user whatever the umask: directories 0700, files
//! 0600 (on Unix; elsewhere the platform's per-user defaults apply).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Creates `dir` (and its missing parents) readable by the user only, and takes group and
/// other access away from it when it already exists.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let fail = |e| Error::storage(&format!("create {}", dir.display()), e);
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir).map_err(fail)?;
        let mode = fs::metadata(dir).map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| Error::storage(&format!("restrict {}", dir.display()), e))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(fail)
}

/// Takes group and other access away from an existing file.
pub fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fail = |e| Error::storage(&format!("restrict {}", path.display()), e);
        let mode = fs::metadata(path).map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o600)).map_err(fail)?;
        }
    }
    Ok(())
}

/// Opens (creating when missing) a file only the user may read or write.
fn open_private(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = options.mode(0o600).open(path)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename; the file ends up
/// private to the user (0600) in a private directory (0700).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Storage(format!("{} has no parent", path.display())))?;
    create_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = open_private(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::storage(&format!("write {}", path.display()), e));
    }
    Ok(())
}

/// A held exclusive lock on a lock file; released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` is held. The lock file and its directory
    /// are created private to the user.
    pub fn acquire(path: &Path) -> Result<FileLock> {
        let file = lock_file(path)?;
        file.lock()
            .map_err(|e| Error::storage(&format!("lock {}", path.display()), e))?;
        Ok(FileLock { file })
    }

    /// The lock if nobody holds it now (a holder that died has released it).
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(Error::storage(&format!("lock {}", path.display()), e))
            }
        }
    }

    /// The same, without blocking the async runtime: a free lock is taken at once, a held
    /// one is waited for on a blocking thread.
    pub async fn acquire_async(path: PathBuf) -> Result<FileLock> {
        let file = lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => return Ok(FileLock { file }),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::storage(&format!("lock {}", path.display()), e));
            }
        }
        tokio::task::spawn_blocking(move || {
            file.lock()
                .map_err(|e| Error::storage(&format!("lock {}", path.display()), e))?;
            Ok(FileLock { file })
        })
        .await
        .map_err(|e| Error::Storage(format!("lock task failed: {e}")))?
    }

    /// The revision the lock file holds now (see [`Revision`]).
    pub fn revision(&self) -> Result<Revision> {
        let mut file = &self.file;
        let mut bytes = Vec::with_capacity(REVISION_LEN);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| Error::storage("read a lock's revision", e))?;
        Ok(Revision(Some(bytes)))
    }

    /// Writes a new random revision into the lock file: called by the holder before it
    /// changes anything the lock guards.
    pub fn bump(&self) -> Result<Revision> {
        let text = format!("{:032x}", rand::random::<u128>());
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(text.as_bytes()))
            .map_err(|e| Error::storage("write a lock's revision", e))?;
        Ok(Revision(Some(text.into_bytes())))
    }
}

const REVISION_LEN: usize = 32;

/// What a lock file says about the writes made under it: every holder that changes what the
/// lock guards (an account's keychain slots, a provider's credential) writes a fresh random
/// revision into the lock file first, while holding it. A value read under the lock and kept
/// with the revision read under the same lock is therefore current for as long as the lock
/// file holds that revision, whoever asks and whether or not they hold the lock. The file is
/// not synced: the revision only has to be seen by processes running now. Empty for a lock
/// nothing was ever written under; unknown (equal to no revision, not even itself) when the
/// file could not be read without the lock, as where locks are mandatory (Windows), so a
/// value kept under it is simply read again.
#[derive(Debug, Clone, Default)]
pub struct Revision(Option<Vec<u8>>);

impl PartialEq for Revision {
    fn eq(&self, other: &Revision) -> bool {
        matches!((&self.0, &other.0), (Some(a), Some(b)) if a == b)
    }
}

impl Revision {
    /// The revision of the lock file at `path`, read without taking the lock.
    pub fn of(path: &Path) -> Revision {
        match fs::read(path) {
            Ok(bytes) => Revision(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Revision(Some(Vec::new())),
            Err(_) => Revision(None),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn lock_file(path: &Path) -> Result<fs::File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    open_private(
        path,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true),
    )
    .map_err(|e| Error::storage(&format!("open {}", path.display()), e))
}

/// The first 16 hex digits of SHA-256: stable file names for URLs and ids.
pub fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bumped_revision_is_seen_without_the_lock_and_an_unreadable_one_matches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/a.lock");
        let before = Revision::of(&path);
        let lock = FileLock::acquire(&path).unwrap();
        assert_eq!(
            lock.revision().unwrap(),
            before,
            "a new lock file: nothing written under it"
        );
        let bumped = lock.bump().unwrap();
        assert_ne!(bumped, before);
        assert_eq!(Revision::of(&path), bumped);
        assert_eq!(lock.revision().unwrap(), bumped);
        assert_ne!(lock.bump().unwrap(), bumped);
        let unreadable = Revision::of(dir.path());
        assert_ne!(unreadable, unreadable.clone());
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cache/deeper/state.json");
        write_atomic(&state, b"x").unwrap();
        assert_eq!(mode(&state), 0o600);
        assert_eq!(mode(state.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("cache")), 0o700);

        let lock = dir.path().join("locks/a.lock");
        drop(FileLock::acquire(&lock).unwrap());
        assert_eq!(mode(&lock), 0o600);
        assert_eq!(mode(lock.parent().unwrap()), 0o700);

        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(open.join("old.json"), b"old").unwrap();
        fs::set_permissions(open.join("old.json"), fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&open.join("old.json"), b"new").unwrap();
        assert_eq!(mode(&open), 0o700, "an existing directory is tightened");
        assert_eq!(
            mode(&open.join("old.json")),
            0o600,
            "a replaced file is private"
        );
    }

    #[test]
    fn lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = FileLock::acquire(&path).unwrap();
        let other = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            other.try_lock().is_err(),
            "a second handle must not get the lock"
        );
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
