//! Where an account's token sets and a provider's credential live: in entries of their own,
//! or on the shelf (`vault::Shelf`), one entry `refresh --all` moves them to so that it
//! reads and writes the keychain once for every account.
//!
//! Invariants:
//! - `tessera.json` names what is shelved (`Account::shelved`, `State::shelved_credentials`);
//!   a name is added only once the shelf holds the value, and until then the value is read
//!   from its own entry, which still holds it (a rotated refresh token is always stored at
//!   once where its slot lives at the time). A shelved slot missing from the shelf is read
//!   from its own entry too.
//! - The shelf is only rewritten under its lock (`locks/shelf.lock`), read and changed whole
//!   in between, after bumping the lock's revision (so a shelf read under the lock can be
//!   changed later without reading it again while the revision holds); that lock is taken
//!   last (after accounts' and providers' locks), so no two processes wait on each other.
//! - A shelved slot is written through the shelf only; its own entry is deleted once the
//!   shelf holds it.
//! - A damaged shelf (`Error::ShelfDamaged`: its values are lost) fails every read of it, and
//!   the first write replaces it with a new one; slots and credentials it named then read as
//!   missing (their accounts must sign in again). A shelf of a newer layout is never replaced.

use crate::account::Account;
use crate::error::{Error, Result};
use crate::fsutil::{FileLock, Revision};
use crate::secret::SecretString;
use crate::vault::{Shelf, Slot, TokenSet};

use super::Tessera;

impl Tessera {
    /// What `slot` of `account` holds, wherever it lives; reading needs no lock.
    pub(crate) fn read_slot(&self, account: &Account, slot: &Slot) -> Result<Option<TokenSet>> {
        self.read_slot_of(Some(account), &account.id, slot)
    }

    /// [`Self::read_slot`] of account `id`, which may not be recorded (yet).
    pub(crate) fn read_slot_of(
        &self,
        account: Option<&Account>,
        id: &str,
        slot: &Slot,
    ) -> Result<Option<TokenSet>> {
        match account.filter(|a| a.is_shelved(slot)) {
            Some(_) => self.read_slot_from(&self.read_shelf()?.0, id, slot),
            None => self.vault.load_slot(id, slot),
        }
    }

    /// What shelved `slot` of account `id` holds, given the shelf: its token set there, else
    /// (named but not moved yet) in its own entry.
    pub(crate) fn read_slot_from(
        &self,
        shelf: &Shelf,
        id: &str,
        slot: &Slot,
    ) -> Result<Option<TokenSet>> {
        match shelf.has_slot(id, slot) {
            true => Ok(shelf.slot(id, slot)),
            false => self.vault.load_slot(id, slot),
        }
    }

    /// Whether the keychain still has the entry `slot` of account `id` is read from (the
    /// shelf's for a shelved slot): the keychain is asked, nothing is read.
    pub(crate) fn holds_slot(
        &self,
        account: Option<&Account>,
        id: &str,
        slot: &Slot,
    ) -> Result<bool> {
        if account.is_some_and(|a| a.is_shelved(slot)) && self.vault.holds_shelf()? {
            return Ok(true);
        }
        self.vault.holds_slot(id, slot)
    }

    /// Reads the shelf under its lock, lets `change` change it, and writes it back when
    /// `change` says it changed anything.
    pub(crate) fn change_shelf(&self, change: impl FnOnce(&mut Shelf) -> bool) -> Result<()> {
        self.change_read_shelf(None, change)
    }

    /// The shelf this process keeps, if kept at `revision` and the keychain answers that its
    /// entry still exists (a locked keychain fails here).
    fn kept_shelf(&self, revision: &Revision) -> Result<Option<Shelf>> {
        Ok(match self.kept.shelf(revision) {
            Some(shelf) if self.vault.holds_shelf()? != shelf.is_empty() => Some(shelf),
            _ => None,
        })
    }

    /// The shelf and its lock's revision, read under that lock (see [`Self::shelf_under`]), so
    /// that no write (of a value split into chunks, on Windows) is seen half-done.
    pub(crate) fn read_shelf(&self) -> Result<(Shelf, Revision)> {
        let lock = FileLock::acquire(&self.data.shelf_lock())?;
        let revision = lock.revision()?;
        Ok((self.shelf_under(&revision)?, revision))
    }

    /// The shelf, read under its lock at `revision`: the one this process keeps while the
    /// revision holds and the keychain answers that the entry still exists (a locked keychain
    /// fails here), else read from the keychain and kept.
    fn shelf_under(&self, revision: &Revision) -> Result<Shelf> {
        if let Some(shelf) = self.kept_shelf(revision)? {
            return Ok(shelf);
        }
        let shelf = self.vault.load_shelf()?;
        self.kept.keep_shelf(revision.clone(), &shelf);
        Ok(shelf)
    }

    /// [`Self::change_shelf`], starting from a shelf read earlier by [`Self::read_shelf`]
    /// when no one has written it since (its lock's revision is unchanged).
    pub(crate) fn change_read_shelf(
        &self,
        read: Option<(Shelf, Revision)>,
        change: impl FnOnce(&mut Shelf) -> bool,
    ) -> Result<()> {
        let lock = FileLock::acquire(&self.data.shelf_lock())?;
        let revision = lock.revision()?;
        let mut shelf = match read {
            Some((shelf, read)) if read == revision => shelf,
            _ => match self.shelf_under(&revision) {
                Err(Error::ShelfDamaged) => Shelf::default(),
                read => read?,
            },
        };
        if change(&mut shelf) {
            let after = lock.bump()?;
            self.vault.save_shelf(&shelf)?;
            self.kept.keep_shelf(after, &shelf);
        }
        Ok(())
    }

    /// Writes `slot` of `account` (`None`: deletes it) where it lives. A deletion removes it
    /// from the shelf too whenever the shelf holds it, named in `tessera.json` or not (a batch
    /// whose record write never landed leaves a copy there).
    pub(crate) fn write_slot(
        &self,
        account: Option<&Account>,
        id: &str,
        slot: &Slot,
        tokens: Option<&TokenSet>,
    ) -> Result<()> {
        let shelved = account.is_some_and(|a| a.is_shelved(slot));
        match tokens {
            Some(t) if shelved => self.change_shelf(|shelf| {
                shelf.put_slot(id, slot, t);
                true
            }),
            Some(t) => self.vault.save_slot(id, slot, t),
            None => {
                if self.vault.holds_shelf()? {
                    self.change_shelf(|shelf| shelf.remove_slot(id, slot))?;
                }
                self.vault.delete_slot(id, slot)
            }
        }
    }

    /// The credential of provider `name` as the keychain holds it; call under the provider's
    /// lock.
    pub(crate) fn read_credential(&self, name: &str) -> Result<Option<SecretString>> {
        if self.data.snapshot()?.credential_shelved(name)
            && let Some(credential) = self.read_shelf()?.0.credential(name)
        {
            return Ok(Some(credential));
        }
        self.vault.load_client_credential(name)
    }

    /// Deletes provider `name`'s credential wherever it may be (the shelf too, named in
    /// `tessera.json` or not); call under the provider's lock.
    pub(crate) fn delete_credential(&self, name: &str) -> Result<()> {
        self.unshelve_credential(name)?;
        self.vault.delete_client_credential(name)
    }

    /// Removes provider `name`'s credential from the shelf if the shelf holds one (left by a
    /// removal that failed half-way, or by a batch that died before naming it).
    pub(crate) fn unshelve_credential(&self, name: &str) -> Result<()> {
        if self.vault.holds_shelf()? {
            self.change_shelf(|shelf| shelf.remove_credential(name))?;
        }
        Ok(())
    }

    /// Fails unless the shelf can be changed, before anything is: a damaged one can (a write
    /// replaces it), one of a newer layout cannot, nor one the keychain will not give.
    pub(crate) fn check_shelf_changeable(&self) -> Result<()> {
        if !self.vault.holds_shelf()? {
            return Ok(());
        }
        match self.read_shelf() {
            Ok(_) | Err(Error::ShelfDamaged) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes every token set of account `id` from the shelf (its slots, named or not: an
    /// organization's slot outlives the organization's place in the record).
    pub(crate) fn unshelve_account(&self, id: &str) -> Result<()> {
        if self.vault.holds_shelf()? {
            self.change_shelf(|shelf| shelf.remove_account(id))?;
        }
        Ok(())
    }
}
