//! Signing out: inside the account's transaction (so no refresh writes a token back after
//! it), end the sessions at the provider — revocation, or the provider's own sign-out —
//! unless asked not to, then remove every keychain slot and the account. If ending the
//! sessions fails nothing is removed.

use crate::error::Result;
use crate::providers::EndedSession;
use crate::vault::Slot;

use super::Tessera;
use super::types::SignOutOutcome;

impl Tessera {
    /// See the module docs.
    pub async fn sign_out(&self, query: &str, revoke: bool) -> Result<SignOutOutcome> {
        let id = self.account(query)?.id;
        let txn = self.begin(&id).await?;
        let account = txn.existing()?;
        let mut slots = vec![Slot::Main];
        for org in account.orgs.iter().chain(&account.signed_in_orgs) {
            let slot = Slot::Org(org.clone());
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
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
