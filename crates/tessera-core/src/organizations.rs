//! Organizations: listing them, getting a token for one, and switching the current one, each
//! the way its provider allows (see [`OrgModel`]):
//! - Auth0 binds a refresh token to the organization it was issued in, so every organization
//!   is its own sign-in (`organization=`) with its own token set under the same account;
//! - Logto mints an organization token from the account's refresh token (`organization_id`),
//!   which rotates that refresh token — so it takes the same single-flight, persist-first path
//!   as any refresh.

use serde::Serialize;

use crate::account::Account;
use crate::error::{Error, Result};
use crate::jwt::TokenKind;
use crate::provider::OrgModel;
use crate::tessera::{ClaimsReport, IssuedToken, RefreshPlan, Tessera};
use crate::vault::Slot;

/// An organization as a front end shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgView {
    pub id: String,
    pub name: Option<String>,
    /// Whether a token for it can be had without a new sign-in.
    pub signed_in: bool,
    /// Whether it is the one used when none is named.
    pub current: bool,
}

impl Tessera {
    fn org_model(&self, account: &Account) -> Result<OrgModel> {
        Ok(self.provider(&account.provider)?.kind.org_model())
    }

    /// The organizations the account's person can use (for Stack Auth, fetched afresh).
    pub async fn organizations(&self, query: &str) -> Result<Vec<OrgView>> {
        let mut account = self.account(query)?;
        let model = self.org_model(&account)?;
        if model == OrgModel::CurrentOrg {
            account = self.stack_teams(&account).await?;
        }
        Ok(account
            .orgs
            .iter()
            .map(|id| OrgView {
                id: id.clone(),
                name: account.org_names.get(id).cloned(),
                signed_in: match model {
                    OrgModel::SignInPerOrg | OrgModel::SessionPerOrg => {
                        account.signed_in_orgs.contains(id)
                    }
                    OrgModel::TokenPerOrg | OrgModel::CurrentOrg => true,
                    OrgModel::None => false,
                },
                current: account.current_org.as_deref() == Some(id.as_str()),
            })
            .collect())
    }

    /// An access token for organization `org` (id or name), obtained the provider's way.
    pub async fn org_token(
        &self,
        query: &str,
        org: &str,
        min_valid: u64,
        force: bool,
    ) -> Result<IssuedToken> {
        let account = self.account(query)?;
        let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
        let plan = match self.org_model(&account)? {
            OrgModel::SignInPerOrg => RefreshPlan::own(Slot::Org(org_id)),
            OrgModel::SessionPerOrg => {
                self.stytch_org_session(&account, &org_id).await?;
                RefreshPlan::own(Slot::Org(org_id))
            }
            OrgModel::TokenPerOrg => RefreshPlan {
                rt_slot: Slot::Main,
                extra: vec![("organization_id".into(), org_id.clone())],
                at_slot: Slot::Org(org_id),
            },
            OrgModel::CurrentOrg => {
                let team = account.resolve_org(org).unwrap_or_else(|| org.to_string());
                if account.current_org.as_deref() != Some(team.as_str()) {
                    self.stack_switch(&account, &team).await?;
                }
                return self.access_token(&account.id, min_valid, force).await;
            }
            OrgModel::None => {
                return Err(Error::Unsupported(format!(
                    "organization tokens at \"{}\"",
                    account.provider
                )));
            }
        };
        let (tokens, refreshed) = self.fresh_tokens(&account, plan, min_valid, force).await?;
        Ok(IssuedToken {
            token: tokens.access_token,
            expires_at: tokens.expires_at,
            refreshed,
        })
    }

    /// The token of organization `org` explained and verified, obtained first the provider's
    /// way when there is none yet (a Logto organization token, a Stytch organization session,
    /// a Stack Auth team switch).
    pub async fn org_claims(
        &self,
        query: &str,
        org: &str,
        kind: TokenKind,
    ) -> Result<ClaimsReport> {
        self.org_token(query, org, 0, false).await?;
        let account = self.account(query)?;
        let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
        match self.org_model(&account)? {
            OrgModel::TokenPerOrg => {
                let audience = format!("urn:logto:organization:{org_id}");
                self.slot_claims(&account, &Slot::Org(org_id), kind, Some(&audience))
                    .await
            }
            OrgModel::CurrentOrg => self.claims(&account.id, kind).await,
            _ => {
                self.slot_claims(&account, &Slot::Org(org_id), kind, None)
                    .await
            }
        }
    }

    /// Makes `org` the organization used when none is named: Stack Auth selects the team at
    /// the provider; Auth0 uses that organization's own sign-in, which must exist already.
    pub async fn switch_org(&self, query: &str, org: &str) -> Result<Account> {
        let account = self.account(query)?;
        let model = self.org_model(&account)?;
        if model == OrgModel::CurrentOrg {
            let account = self.stack_teams(&account).await?;
            let team = account.resolve_org(org).unwrap_or_else(|| org.to_string());
            return self.stack_switch(&account, &team).await;
        }
        if model == OrgModel::SessionPerOrg {
            let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
            self.stytch_org_session(&account, &org_id).await?;
            return self.update_account(&account.id, |a| a.current_org = Some(org_id.clone()));
        }
        if model != OrgModel::SignInPerOrg {
            return Err(Error::Unsupported(format!(
                "a current organization at \"{}\" (ask for an organization's token with --org)",
                account.provider
            )));
        }
        let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
        if !account.signed_in_orgs.contains(&org_id) {
            return Err(Error::OrgSignInRequired {
                account: account.id,
                org: org_id,
            });
        }
        self.update_account(&account.id, |a| a.current_org = Some(org_id.clone()))
    }
}
