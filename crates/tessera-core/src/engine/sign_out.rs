//! Signing out: inside the account's transaction (so no refresh writes a token back after
//! it), end the sessions at the provider — revocation, or the provider's own sign-out —
//! unless asked not to, then remove every keychain slot and the account. If ending the
//! sessions fails nothing is removed; once they are ended, the account is marked as signing
//! out, so a process that dies while removing it leaves the rest to the next one.

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
        let mut tokens = Vec::new();
        for slot in &slots {
            tokens.extend(txn.load(slot)?);
        }
        let ended = if revoke {
            let p = self.resolve(&account.provider).await?;
            p.adapter.end_session(&self.context(&p), &tokens).await?
        } else {
            EndedSession::default()
        };
        // From here on the sign-out is finished by whichever process comes next, should this
        // one die half-way.
        txn.update(|a| a.pending = Some(PendingWrite::SignOut))?;
        for slot in &slots {
            txn.delete(slot)?;
        }
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
