//! Refreshing every account at once (`refresh --all`): every account's transaction is held
//! for the whole batch, the refreshes run concurrently over the one HTTP client, and their
//! new tokens are stored together, with one keychain write (the shelf, see `shelf`) and one
//! write of `tessera.json`, instead of one of each per account.
//!
//! Promises kept as for a single refresh: each account is refreshed inside its own
//! transaction, taken in id order (so two processes doing this never wait on each other); a
//! rotated refresh token is stored at once, where the slot lives then, before the batch goes
//! on; tokens are stored only once verified. A batch whose write fails stores nothing more
//! (the previous access tokens stay, with any rotated refresh token) and fails as a whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::account::{AccountStatus, State};
use crate::error::{Error, Result};
use crate::fsutil::{FileLock, Revision};
use crate::secret::SecretString;
use crate::vault::{Shelf, Slot, TokenSet};

use super::Tessera;
use super::refresh::{AccountChange, Given, default_plan_by, required};
use super::txn::AccountTxn;
use super::types::RefreshOutcome;

/// Refreshes whose tokens wait to be stored together.
#[derive(Default)]
pub(super) struct Batch {
    done: Mutex<Vec<Deferred>>,
}

/// One refresh's new tokens and record change.
pub(super) struct Deferred {
    pub id: String,
    pub slot: Slot,
    pub tokens: TokenSet,
    pub change: AccountChange,
}

impl Batch {
    pub fn defer(&self, deferred: Deferred) {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(deferred);
    }

    fn take(self) -> Vec<Deferred> {
        self.done.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl Tessera {
    /// Refreshes every account that can be refreshed, at most `parallel` at a time over the
    /// one HTTP client (its connections reused); each account's outcome, in the accounts'
    /// order. Accounts that must sign in again are left out. See the module docs.
    pub async fn refresh_all(
        &self,
        parallel: usize,
    ) -> Result<Vec<(String, Result<RefreshOutcome>)>> {
        use futures_util::StreamExt;
        let prepared = self.vault.prepare_in_background();
        let order: Vec<String> = self
            .accounts()?
            .into_iter()
            .filter(|a| a.status == AccountStatus::Active)
            .map(|a| a.id)
            .collect();
        let mut txns = BTreeMap::new();
        for id in order.iter().collect::<BTreeSet<_>>() {
            txns.insert(id.clone(), self.begin(id).await?);
        }
        let state = self.data.snapshot()?;
        let _ = prepared.await;
        // Read before the shelf, so a credential kept from it is never newer than the revision
        // it is kept under (see `kept`).
        let credential_revisions: Vec<(&str, Revision)> = state
            .shelved_credentials
            .iter()
            .map(|name| (name.as_str(), Revision::of(&self.data.provider_lock(name))))
            .collect();
        let shelved = state.accounts.iter().any(|a| !a.shelved.is_empty())
            || !state.shelved_credentials.is_empty();
        let (shelf, revision) = match shelved {
            true => {
                let (shelf, revision) = self.read_shelf()?;
                (shelf, Some(revision))
            }
            false => (Shelf::default(), None),
        };
        self.keep_shelved_credentials(credential_revisions, &shelf);
        let batch = Batch::default();
        let (txns, batch_ref, state_ref, shelf_ref) = (&txns, &batch, &state, &shelf);
        let outcomes: Vec<(String, Result<RefreshOutcome>)> = futures_util::stream::iter(order)
            .map(|id| async move {
                let outcome = match (state_ref.account_by_id(&id), txns.get(&id)) {
                    (Ok(account), Some(txn)) => {
                        self.refresh_deferred(txn, account.clone(), shelf_ref, batch_ref)
                            .await
                    }
                    _ => Err(Error::UnknownAccount(id.clone())),
                };
                (id, outcome)
            })
            .buffered(parallel.max(1))
            .collect()
            .await;
        let read = revision.map(|r| (shelf, r));
        self.store_batch(txns, &state, batch.take(), read).await?;
        Ok(outcomes)
    }

    /// One account's refresh in a batch: its plan's slot read from the shelf when it is
    /// there, its new tokens deferred to `batch`.
    async fn refresh_deferred(
        &self,
        txn: &AccountTxn<'_>,
        account: crate::account::Account,
        shelf: &Shelf,
        batch: &Batch,
    ) -> Result<RefreshOutcome> {
        let read = |slot: &Slot| match account.is_shelved(slot) {
            true => self.read_slot_from(shelf, &account.id, slot),
            false => self.vault.load_slot(&account.id, slot),
        };
        let (plan, main) = default_plan_by(&account, read)?;
        let current = match main {
            Some(tokens) => Some(tokens),
            None => read(&plan.at_slot)?,
        };
        let given = Given {
            loaded: Some(required(&account, &plan.at_slot, current)?),
            account: Some(account),
            handover: None,
            batch: Some(batch),
        };
        self.refresh_now(txn, &plan, given).await
    }

    /// Keeps the shelved credentials `shelf` holds that this process does not keep yet, under
    /// their providers' revisions read before the shelf was (see `kept`).
    fn keep_shelved_credentials(&self, revisions: Vec<(&str, Revision)>, shelf: &Shelf) {
        for (name, revision) in revisions {
            if self.kept.credential(name, &revision).is_none()
                && let Some(credential) = shelf.credential(name)
            {
                self.kept.keep_credential(name, revision, Some(&credential));
            }
        }
    }

    /// Stores a batch's tokens (onto the shelf as `read` at the start, when no one wrote it
    /// since): the shelf is written once, then every account's record (and
    /// what now lives on the shelf) in one write of `tessera.json`; own entries of what moved
    /// to the shelf are deleted last.
    async fn store_batch(
        &self,
        txns: &BTreeMap<String, AccountTxn<'_>>,
        state: &State,
        deferred: Vec<Deferred>,
        read: Option<(Shelf, Revision)>,
    ) -> Result<()> {
        if deferred.is_empty() {
            return Ok(());
        }
        let moving: Vec<(&str, &Slot)> = deferred
            .iter()
            .filter(|d| {
                state
                    .account_by_id(&d.id)
                    .is_ok_and(|a| !a.is_shelved(&d.slot))
            })
            .map(|d| (d.id.as_str(), &d.slot))
            .collect();
        let mut credentials: Vec<(String, SecretString)> = Vec::new();
        let providers: BTreeSet<&str> = deferred
            .iter()
            .filter_map(|d| state.account_by_id(&d.id).ok())
            .map(|a| a.provider.as_str())
            .filter(|p| !state.credential_shelved(p))
            .collect();
        for provider in providers {
            if let Some(credential) = self.client_credential(provider).await? {
                credentials.push((provider.to_string(), credential));
            }
        }
        let txn_of = |id: &str| {
            txns.get(id)
                .ok_or_else(|| Error::UnknownAccount(id.to_string()))
        };
        let mut revisions = Vec::with_capacity(deferred.len());
        for d in &deferred {
            revisions.push(txn_of(&d.id)?.before_write(&d.slot)?);
        }
        self.change_read_shelf(read, |shelf| {
            for d in &deferred {
                shelf.put_slot(&d.id, &d.slot, &d.tokens);
            }
            for (name, credential) in &credentials {
                shelf.put_credential(name, credential);
            }
            true
        })?;
        let now = self.now();
        self.data.update(|s| {
            for d in &deferred {
                if let Ok(a) = s.account_mut(&d.id) {
                    d.change.apply(a);
                    a.updated_at = now;
                }
            }
            for (id, slot) in &moving {
                if let Ok(a) = s.account_mut(id) {
                    a.shelved.push(slot.name());
                }
            }
            for (name, _) in &credentials {
                if !s.credential_shelved(name) {
                    s.shelved_credentials.push(name.clone());
                }
            }
            Ok(())
        })?;
        for (d, after) in deferred.iter().zip(revisions) {
            txn_of(&d.id)?.after_write(&d.slot, after, Some(&d.tokens));
        }
        for (id, slot) in moving {
            let _ = self.vault.delete_slot(id, slot);
        }
        for (name, _) in credentials {
            let _lock = FileLock::acquire_async(self.data.provider_lock(&name)).await?;
            let _ = self.vault.delete_client_credential(&name);
        }
        Ok(())
    }
}
