//! The per-account transaction. Every write to an account's keychain slots or its record in
//! `tessera.json` happens inside an [`AccountTxn`], which holds the account's lock across
//! threads (a tokio mutex per account id) and processes (a file lock under `locks/`), so a
//! refresh, a sign-in, an organization token and a sign-out of one account never interleave,
//! in one process or between the app and the CLI. Whatever a transaction decides on, it reads
//! under the lock ([`AccountTxn::account`], [`AccountTxn::load`]).
//!
//! Providers have their own lock ([`ProviderTxn`]), so adding and removing one are atomic
//! with respect to each other; a sign-in's metadata write checks, under the state file's
//! lock, that its provider still exists.
//!
//! Every keychain write (an account's slot, a provider's credential) first bumps the
//! [`Revision`] in the lock file it is made under, which is what lets any process keep what
//! it read under that lock (`kept`).

use std::sync::Arc;

use crate::account::{Account, PendingWrite, State};
use crate::error::{Error, Result};
use crate::fsutil::{FileLock, Revision};
use crate::secret::SecretString;
use crate::vault::{Slot, TokenSet};

use super::Tessera;

/// See the module docs. Dropping it releases both locks.
pub(crate) struct AccountTxn<'t> {
    engine: &'t Tessera,
    id: String,
    across_processes: FileLock,
    _in_process: tokio::sync::OwnedMutexGuard<()>,
}

/// The lock of one provider name, held while it is added or removed.
pub(crate) struct ProviderTxn {
    across_processes: FileLock,
}

impl Tessera {
    /// Begins a transaction on account `id` (which need not exist yet: a first sign-in).
    pub(crate) async fn begin(&self, id: &str) -> Result<AccountTxn<'_>> {
        let lock = {
            let mut locks = self.account_locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(id.to_string()).or_default())
        };
        let in_process = lock.lock_owned().await;
        let across = FileLock::acquire_async(self.data.refresh_lock(id)).await?;
        Ok(AccountTxn {
            engine: self,
            id: id.to_string(),
            across_processes: across,
            _in_process: in_process,
        })
    }

    pub(crate) async fn begin_provider(&self, name: &str) -> Result<ProviderTxn> {
        Ok(ProviderTxn {
            across_processes: FileLock::acquire_async(self.data.provider_lock(name)).await?,
        })
    }

    /// The credential of provider `name`: kept in memory while its lock's revision holds
    /// (see `kept`), else read from the keychain under the provider's lock and kept.
    pub(crate) async fn client_credential(&self, name: &str) -> Result<Option<SecretString>> {
        let path = self.data.provider_lock(name);
        if let Some(kept) = self.kept.credential(name, &Revision::of(&path)) {
            return Ok(kept);
        }
        let lock = FileLock::acquire_async(path).await?;
        let revision = lock.revision()?;
        let credential = self.read_credential(name)?;
        self.kept
            .keep_credential(name, revision, credential.as_ref());
        Ok(credential)
    }
}

impl Tessera {
    /// Completes or undoes the two-part writes of processes that died in the middle (see
    /// [`PendingWrite`]): a first sign-in whose keychain entry exists is completed, one
    /// without is removed; a sign-out is completed. An account whose lock is held is being
    /// written right now and is left alone.
    pub(crate) fn recover_interrupted(&self) -> Result<()> {
        let pending: Vec<Account> = self
            .data
            .read()?
            .accounts
            .into_iter()
            .filter(|a| a.pending.is_some())
            .collect();
        for account in pending {
            let Some(lock) = FileLock::try_acquire(&self.data.refresh_lock(&account.id))? else {
                continue;
            };
            let slots = slots_of(&account);
            let finish = match account.pending {
                Some(PendingWrite::SignIn) => {
                    let mut stored = false;
                    for slot in &slots {
                        stored |= self.read_slot(&account, slot)?.is_some();
                    }
                    stored
                }
                _ => {
                    lock.bump()?;
                    for slot in &slots {
                        self.write_slot(Some(&account), &account.id, slot, None)?;
                    }
                    self.unshelve_account(&account.id)?;
                    false
                }
            };
            self.data.update(|s| {
                if finish {
                    s.account_mut(&account.id)?.pending = None;
                } else {
                    s.accounts.retain(|a| a.id != account.id);
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// Every keychain slot an account may have: its own and one per organization.
pub(crate) fn slots_of(account: &Account) -> Vec<Slot> {
    let mut slots = vec![Slot::Main];
    for org in account.orgs.iter().chain(&account.signed_in_orgs) {
        let slot = Slot::Org(org.clone());
        if !slots.contains(&slot) {
            slots.push(slot);
        }
    }
    slots
}

impl AccountTxn<'_> {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The account as it is now, or `None` when it does not exist (any more).
    pub fn account(&self) -> Result<Option<Account>> {
        Ok(self
            .engine
            .data
            .snapshot()?
            .accounts
            .iter()
            .find(|a| a.id == self.id)
            .cloned())
    }

    /// The account as it is now; an error when it is gone (signed out meanwhile).
    pub fn existing(&self) -> Result<Account> {
        self.account()?
            .ok_or_else(|| Error::UnknownAccount(self.id.clone()))
    }

    /// The revision of the account's lock as it is now (see `fsutil::Revision`).
    pub fn revision(&self) -> Result<Revision> {
        self.across_processes.revision()
    }

    /// What `slot` holds: kept in memory while the lock's revision holds, else read from the
    /// keychain and kept. A kept value is used only once the keychain has answered that the
    /// entry still exists (or still does not): a locked or vanished keychain fails here, before
    /// anything reaches a provider, and an entry someone removed by hand is noticed.
    pub fn load(&self, slot: &Slot) -> Result<Option<TokenSet>> {
        let kept = &self.engine.kept;
        let revision = self.across_processes.revision()?;
        let account = self.account()?;
        let account = account.as_ref();
        if let Some(tokens) = kept.token_set(&self.id, slot, &revision)
            && self.engine.holds_slot(account, &self.id, slot)? == tokens.is_some()
        {
            return Ok(tokens);
        }
        let tokens = self.engine.read_slot_of(account, &self.id, slot)?;
        kept.keep_token_set(&self.id, slot, revision, tokens.as_ref());
        Ok(tokens)
    }

    /// Writes a slot (`None`: deletes it), after bumping the lock's revision; this process's
    /// warm token of the account is retired first.
    fn write(&self, slot: &Slot, tokens: Option<&TokenSet>) -> Result<()> {
        let after = self.before_write(slot)?;
        self.engine
            .write_slot(self.account()?.as_ref(), &self.id, slot, tokens)?;
        self.after_write(slot, after, tokens);
        Ok(())
    }

    /// What comes before any write of `slot`: the warm token retired, the revision bumped.
    /// Returns the new revision, for [`Self::after_write`].
    pub(crate) fn before_write(&self, slot: &Slot) -> Result<Revision> {
        self.engine.warm.forget(&self.id);
        let before = self.across_processes.revision()?;
        let after = self.across_processes.bump()?;
        self.engine.kept.rebase(&self.id, slot, &before, &after);
        Ok(after)
    }

    /// Keeps what `slot` holds once its write landed.
    pub(crate) fn after_write(&self, slot: &Slot, after: Revision, tokens: Option<&TokenSet>) {
        self.engine
            .kept
            .keep_token_set(&self.id, slot, after, tokens);
    }

    pub fn save(&self, slot: &Slot, tokens: &TokenSet) -> Result<()> {
        self.write(slot, Some(tokens))
    }

    pub fn delete(&self, slot: &Slot) -> Result<()> {
        self.write(slot, None)
    }

    /// Changes the state file under its lock; nothing is written when `change` fails.
    pub fn update_state<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        self.engine.data.update(change)
    }

    /// Changes the account's record; an error when the account is gone.
    pub fn update(&self, change: impl FnOnce(&mut Account)) -> Result<Account> {
        let now = self.engine.now();
        self.update_state(|s| {
            let a = s.account_mut(&self.id)?;
            change(a);
            a.updated_at = now;
            Ok(a.clone())
        })
    }

    /// Writes `tokens` to `slot`, runs `then` (a metadata write), and puts the slot back as
    /// it was when `then` fails: the slot's previous tokens, or nothing.
    pub fn save_then<T>(
        &self,
        slot: &Slot,
        tokens: &TokenSet,
        then: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        // What to put back should `then` fail; on a damaged shelf it is lost already.
        let previous = match self.load(slot) {
            Err(Error::ShelfDamaged) => None,
            read => read?,
        };
        self.save(slot, tokens)?;
        then().inspect_err(|_| {
            let _ = match &previous {
                Some(p) => self.save(slot, p),
                None => self.delete(slot),
            };
        })
    }
}

impl ProviderTxn {
    /// Writes a provider's credential and then runs `then`; removes the credential again
    /// when `then` fails. Only called for a name that had no provider under this lock.
    pub fn save_credential_then<T>(
        &self,
        engine: &Tessera,
        name: &str,
        credential: Option<&SecretString>,
        then: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if let Some(c) = credential {
            self.across_processes.bump()?;
            engine.unshelve_credential(name)?;
            engine.vault.save_client_credential(name, c)?;
        }
        then().inspect_err(|_| {
            if credential.is_some() && self.across_processes.bump().is_ok() {
                let _ = engine.vault.delete_client_credential(name);
            }
        })
    }

    /// Deletes a provider's credential, wherever it is.
    pub fn delete_credential(&self, engine: &Tessera, name: &str) -> Result<()> {
        self.across_processes.bump()?;
        engine.delete_credential(name)
    }
}
