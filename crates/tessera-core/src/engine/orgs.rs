//! Organizations: listing them, getting a token for one, and switching the current one, each
//! the way the provider's organization model allows ([`OrgModel`], from its spec):
//! - sign-in per organization (Auth0): every organization is its own sign-in with its own
//!   token set under the same account;
//! - token per organization (Logto): an organization token is minted from the account's
//!   refresh token, which rotates it — so it takes the same transactional, persist-first
//!   refresh as any other;
//! - current organization (Stack Auth teams): selected at the provider, then a refresh makes
//!   the token carry it;
//! - session per organization (Stytch B2B): a member session per organization, a missing one
//!   exchanged from the current one.

use serde::Serialize;

use crate::account::Account;
use crate::error::{Error, Result};
use crate::jwt::TokenKind;
use crate::provider::OrgModel;
use crate::providers::OrgSessionSource;
use crate::vault::Slot;

use super::Tessera;
use super::refresh::RefreshPlan;
use super::types::{ClaimsReport, IssuedToken};

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
        Ok(self.provider(&account.provider)?.kind.spec().org_model)
    }

    /// The organizations the account's person can use (where the provider lists them, as
    /// Stack Auth does, fetched afresh).
    pub async fn organizations(&self, query: &str) -> Result<Vec<OrgView>> {
        let mut account = self.account(query)?;
        let model = self.org_model(&account)?;
        if model == OrgModel::CurrentOrg {
            account = self.fetch_orgs(&account).await?;
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
                self.org_session(&account, &org_id).await?;
                RefreshPlan::own(Slot::Org(org_id))
            }
            OrgModel::TokenPerOrg => {
                let adapter = self.provider(&account.provider)?.kind.adapter();
                let request = adapter.org_token_request(&org_id).ok_or_else(|| {
                    Error::Unsupported(format!("organization tokens at \"{}\"", account.provider))
                })?;
                RefreshPlan {
                    rt_slot: Slot::Main,
                    extra: request.params,
                    at_slot: Slot::Org(org_id),
                }
            }
            OrgModel::CurrentOrg => {
                if account.current_org.as_deref() != Some(org_id.as_str()) {
                    self.select_org(&account, &org_id).await?;
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
            expires_at: super::refresh::expiry(&tokens),
            token: tokens.access_token,
            refreshed,
        })
    }

    /// The token of organization `org` explained and verified, obtained first the provider's
    /// way when there is none yet.
    pub async fn org_claims(
        &self,
        query: &str,
        org: &str,
        kind: TokenKind,
    ) -> Result<ClaimsReport> {
        self.org_token(query, org, 0, false).await?;
        let account = self.account(query)?;
        let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
        let adapter = self.provider(&account.provider)?.kind.adapter();
        match self.org_model(&account)? {
            OrgModel::CurrentOrg => self.claims(&account.id, kind).await,
            _ => {
                let audience = adapter.org_token_request(&org_id).map(|r| r.audience);
                self.slot_claims(&account, &Slot::Org(org_id), kind, audience.as_deref())
                    .await
            }
        }
    }

    /// Makes `org` the organization used when none is named: selected at the provider
    /// (Stack Auth), or one whose session exists or can be exchanged (Stytch), or one with
    /// its own sign-in already (Auth0).
    pub async fn switch_org(&self, query: &str, org: &str) -> Result<Account> {
        let account = self.account(query)?;
        let model = self.org_model(&account)?;
        let account = match model {
            OrgModel::CurrentOrg => self.fetch_orgs(&account).await?,
            _ => account,
        };
        let org_id = account.resolve_org(org).unwrap_or_else(|| org.to_string());
        match model {
            OrgModel::CurrentOrg => return self.select_org(&account, &org_id).await,
            OrgModel::SessionPerOrg => self.org_session(&account, &org_id).await?,
            OrgModel::SignInPerOrg if !account.signed_in_orgs.contains(&org_id) => {
                return Err(Error::OrgSignInRequired {
                    account: account.id,
                    org: org_id,
                });
            }
            OrgModel::SignInPerOrg => {}
            OrgModel::TokenPerOrg | OrgModel::None => {
                return Err(Error::Unsupported(format!(
                    "a current organization at \"{}\" (ask for an organization's token with --org)",
                    account.provider
                )));
            }
        }
        let txn = self.begin(&account.id).await?;
        txn.update(|a| a.current_org = Some(org_id.clone()))
    }

    /// The person's organizations, fetched from the provider into the account's record.
    async fn fetch_orgs(&self, account: &Account) -> Result<Account> {
        let token = self.access_token(&account.id, 30, false).await?;
        let p = self.resolve(&account.provider).await?;
        let orgs = p.adapter.list_orgs(&self.context(&p), &token.token).await?;
        let txn = self.begin(&account.id).await?;
        txn.update(|a| {
            a.orgs = orgs.iter().map(|o| o.id.clone()).collect();
            for o in orgs.iter().filter(|o| !o.name.is_empty()) {
                a.org_names.insert(o.id.clone(), o.name.clone());
            }
        })
    }

    /// Selects `org` at the provider and refreshes, so the token carries it.
    async fn select_org(&self, account: &Account, org: &str) -> Result<Account> {
        let token = self.access_token(&account.id, 30, false).await?;
        let p = self.resolve(&account.provider).await?;
        p.adapter
            .select_org(&self.context(&p), &token.token, org)
            .await?;
        let txn = self.begin(&account.id).await?;
        self.refresh_in(&txn, &RefreshPlan::own(Slot::Main), None)
            .await?;
        txn.existing()
    }

    /// A session for `org`, exchanged from the current organization's when missing.
    async fn org_session(&self, account: &Account, org: &str) -> Result<()> {
        if self
            .read_slot(account, &Slot::Org(org.to_string()))?
            .is_some()
        {
            return Ok(());
        }
        let current = account
            .current_org
            .clone()
            .ok_or_else(|| Error::NeedsSignIn(account.id.clone()))?;
        let session = self
            .read_slot(account, &Slot::Org(current))?
            .and_then(|t| t.refresh_token)
            .ok_or_else(|| Error::NeedsSignIn(account.id.clone()))?;
        let p = self.resolve(&account.provider).await?;
        let exchanged = p
            .adapter
            .open_org_session(&self.context(&p), OrgSessionSource::Member(&session), org)
            .await?;
        let email = account.email.as_deref().unwrap_or(&account.subject);
        self.store_org_session(&p, email, exchanged, &[]).await?;
        Ok(())
    }
}
