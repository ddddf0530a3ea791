//! Signing out: inside the account's transaction (so no refresh writes a token back after
//! it), end the sessions at the provider — revocation, or the provider's own sign-out —
//! unless asked not to, then remove every keychain slot and the account. If ending the
//! sessions fails nothing is removed. The account is marked as signing out before the provider
//! is asked, so a process that dies after a session may have been revoked leaves the rest of
//! the sign-out to the next one (which completes it locally).

use crate::account::PendingWrite;
use crate::error::Result;
use crate::providers::EndedSession;

use super::Tessera;
use super::txn::slots_of;
use super::types::SignOutOutcome;

impl Tessera {
    /// See the module docs.
    pub async fn sign_out(&self, query: &str, revoke: bool) -> Result<SignOutOutcome> {
        let id = self.account(query)?.id;
        let txn = self.begin(&id).await?;
        let account = txn.existing()?;
        let slots = slots_of(&account);
        // The tokens are read only to end their sessions: without revocation, a sign-out needs
        // nothing it may be unable to read (a damaged shelf).
        let mut tokens = Vec::new();
        for slot in slots.iter().filter(|_| revoke) {
            tokens.extend(txn.load(slot)?);
        }
        self.check_shelf_changeable()?;
        // Marked before the provider hears of it: once a session may be revoked, the sign-out
        // is finished by whichever process comes next, should this one die half-way.
        txn.update(|a| a.pending = Some(PendingWrite::SignOut))?;
        let ended = if revoke {
            let ended = match self.resolve(&account.provider).await {
                Ok(p) => p.adapter.end_session(&self.context(&p), &tokens).await,
                Err(e) => Err(e),
            };
            match ended {
                Ok(ended) => ended,
                Err(e) => {
                    txn.update(|a| a.pending = None)?;
                    return Err(e);
                }
            }
        } else {
            EndedSession::default()
        };
        for slot in &slots {
            txn.delete(slot)?;
        }
        self.unshelve_account(&account.id)?;
        txn.update_state(|s| {
            s.accounts.retain(|a| a.id != account.id);
            Ok(())
        })?;
        Ok(SignOutOutcome {
            account_id: account.id,
            revoked: ended.revoked,
            logout_url: ended.logout_url,
        })
    }
}
