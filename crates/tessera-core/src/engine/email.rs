//! Sign-ins typed into Tessera: e-mail and password, and mailed links.
//!
//! A mailed link is requested for one provider and e-mail; its proof (a PKCE verifier, or the
//! nonce the provider issued for the mail) stays in memory, one per provider. The link comes
//! back over the deep link (the app, kind permitting) or a loopback wait; it is redeemed with
//! that proof, so a link from another mail is refused, and the request stays pending until a
//! link redeems (a forged one does not end it). A redeemed link either signs in, or discovers
//! organizations to pick from (Stytch B2B), each pick then exchanged for its own session.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::account::Account;
use crate::error::{Error, Result};
use crate::flow::FLOW_TTL;
use crate::provider::ProviderKind;
use crate::providers::{DiscoveredOrg, LinkProof, OrgSessionSource, Redeemed};
use crate::secret::SecretString;

use super::sign_in::SignInFacts;
use super::{Resolved, Tessera};

/// How long a mailed link (or its typed code) is waited for.
pub const EMAIL_LINK_TTL: u64 = 3600;

/// Mailed links waiting (by provider) and discoveries waiting for a pick (by flow id).
#[derive(Default)]
pub(crate) struct EmailFlows {
    sent: Mutex<HashMap<String, SentLink>>,
    discovered: Mutex<HashMap<String, Discovered>>,
}

struct SentLink {
    email: String,
    proof: LinkProof,
    sent_at: u64,
}

struct Discovered {
    provider: String,
    email: String,
    session: SecretString,
    orgs: Vec<DiscoveredOrg>,
    at: u64,
}

/// A mailed sign-in link on its way.
#[derive(Debug, Clone, Serialize)]
pub struct EmailSignInStart {
    pub provider: String,
    pub email: String,
    pub expires_at: u64,
}

/// The organizations a mailed link discovered, waiting for the person's pick.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    pub flow_id: String,
    pub provider: String,
    pub email: String,
    pub organizations: Vec<DiscoveredOrg>,
}

/// What a mailed link led to.
#[derive(Debug)]
pub enum EmailLinkOutcome {
    SignedIn(Box<Account>),
    /// Pick organizations with [`Tessera::choose_organizations`].
    PickOrganizations(Discovery),
}

impl Tessera {
    /// Signs in with e-mail and password, inside Tessera.
    pub async fn sign_in_with_password(
        &self,
        provider: &str,
        email: &str,
        password: &SecretString,
    ) -> Result<Account> {
        let p = self.resolve(provider).await?;
        let tokens = p
            .adapter
            .password_sign_in(&self.context(&p), email, password)
            .await?;
        self.verify_and_store(&p, tokens, SignInFacts::default(), None)
            .await
    }

    /// Mails a sign-in link to `email` that comes back to `redirect_uri`; a newer request
    /// to the same provider replaces this one.
    pub async fn start_email_sign_in(
        &self,
        provider: &str,
        email: &str,
        redirect_uri: &str,
    ) -> Result<EmailSignInStart> {
        let p = self.resolve(provider).await?;
        let proof = p
            .adapter
            .send_email_link(&self.context(&p), email, redirect_uri)
            .await?;
        let now = self.now();
        self.email
            .sent
            .lock()
            .map_err(|_| Self::poisoned())?
            .insert(
                p.config.name.clone(),
                SentLink {
                    email: email.to_string(),
                    proof,
                    sent_at: now,
                },
            );
        Ok(EmailSignInStart {
            provider: p.config.name,
            email: email.to_string(),
            expires_at: now.saturating_add(EMAIL_LINK_TTL),
        })
    }

    /// Whether `url` has the shape of a mailed sign-in link of some provider kind (rather
    /// than a browser sign-in's redirect), waited for or not.
    pub fn is_email_link(&self, url: &str) -> bool {
        ProviderKind::ALL
            .iter()
            .any(|k| k.adapter().is_email_link(url))
    }

    /// The provider of the newest e-mail sign-in whose kind recognises `url`.
    fn waiting_for(&self, url: &str) -> Option<String> {
        let sent = self.email.sent.lock().ok()?;
        sent.iter()
            .filter(|(name, _)| {
                self.provider(name)
                    .is_ok_and(|c| c.kind.adapter().is_email_link(url))
            })
            .max_by_key(|(_, l)| l.sent_at)
            .map(|(name, _)| name.clone())
    }

    /// Takes a mailed link back (over the deep link): see [`Tessera::complete_email_link_for`].
    pub async fn complete_email_link(&self, url: &str) -> Result<EmailLinkOutcome> {
        let provider = self.waiting_for(url).ok_or(Error::UnknownState)?;
        self.complete_email_link_for(&provider, url).await
    }

    /// Takes the mailed link of `provider`'s waiting e-mail sign-in back: signs in, or lists
    /// the organizations it discovered.
    pub async fn complete_email_link_for(
        &self,
        provider: &str,
        url: &str,
    ) -> Result<EmailLinkOutcome> {
        let p = self.resolve(provider).await?;
        let sent = self.take_link(&p.config.name)?;
        let redeemed = p
            .adapter
            .redeem_email_link(&self.context(&p), url, &sent.proof)
            .await;
        self.finish_link(&p, sent, redeemed).await
    }

    /// Signs in with the short code the mail shows, typed by the person. A wrong code may be
    /// typed again; the mail's code works once.
    pub async fn sign_in_with_mailed_code(&self, provider: &str, typed: &str) -> Result<Account> {
        let p = self.resolve(provider).await?;
        let sent = self.take_link(&p.config.name)?;
        let redeemed = p
            .adapter
            .redeem_typed_code(&self.context(&p), typed, &sent.proof)
            .await;
        match self.finish_link(&p, sent, redeemed).await? {
            EmailLinkOutcome::SignedIn(account) => Ok(*account),
            EmailLinkOutcome::PickOrganizations(_) => Err(Error::Unsupported(format!(
                "typing the mailed code at \"{provider}\" (open the link instead)"
            ))),
        }
    }

    /// The waiting link request of provider `name`, taken out while it is redeemed.
    fn take_link(&self, name: &str) -> Result<SentLink> {
        let sent = self
            .email
            .sent
            .lock()
            .map_err(|_| Self::poisoned())?
            .remove(name)
            .ok_or(Error::UnknownState)?;
        if self.now().saturating_sub(sent.sent_at) > EMAIL_LINK_TTL {
            return Err(Error::FlowExpired);
        }
        Ok(sent)
    }

    /// Ends a redemption: the request is used up only when the provider accepted the link
    /// (a forged or wrong one leaves it waiting); then signs in or keeps the discovery.
    async fn finish_link(
        &self,
        p: &Resolved,
        sent: SentLink,
        redeemed: Result<Redeemed>,
    ) -> Result<EmailLinkOutcome> {
        let name = &p.config.name;
        let redeemed = match redeemed {
            Ok(r) => r,
            Err(e) => {
                let mut waiting = self.email.sent.lock().map_err(|_| Self::poisoned())?;
                waiting.entry(name.clone()).or_insert(sent);
                return Err(e);
            }
        };
        match redeemed {
            Redeemed::Tokens(tokens) => {
                let account = self
                    .verify_and_store(p, tokens, SignInFacts::default(), None)
                    .await?;
                Ok(EmailLinkOutcome::SignedIn(Box::new(account)))
            }
            Redeemed::Organizations {
                session,
                email,
                orgs,
            } => {
                if !email.eq_ignore_ascii_case(&sent.email) {
                    return Err(Error::MalformedCallback(format!(
                        "the link was for {email}, not {}",
                        sent.email
                    )));
                }
                let flow_id = format!(
                    "disc-{}",
                    crate::fsutil::short_hash(session.expose_secret())
                );
                self.email
                    .discovered
                    .lock()
                    .map_err(|_| Self::poisoned())?
                    .insert(
                        flow_id.clone(),
                        Discovered {
                            provider: name.clone(),
                            email: email.clone(),
                            session,
                            orgs: orgs.clone(),
                            at: self.now(),
                        },
                    );
                Ok(EmailLinkOutcome::PickOrganizations(Discovery {
                    flow_id,
                    provider: name.clone(),
                    email,
                    organizations: orgs,
                }))
            }
        }
    }

    /// Signs in to the picked organizations (ids or slugs) of a discovery, the first with
    /// its intermediate session, the others by exchanging that member session. Each
    /// organization is stored as it succeeds; one that demands more (MFA) stops with a clear
    /// error. The discovery is used up.
    pub async fn choose_organizations(&self, flow_id: &str, picks: &[String]) -> Result<Account> {
        let found = self
            .email
            .discovered
            .lock()
            .map_err(|_| Self::poisoned())?
            .remove(flow_id)
            .ok_or(Error::UnknownState)?;
        if self.now().saturating_sub(found.at) > FLOW_TTL {
            return Err(Error::FlowExpired);
        }
        if picks.is_empty() {
            return Err(Error::InvalidConfig(
                "pick at least one organization".into(),
            ));
        }
        let p = self.resolve(&found.provider).await?;
        let mut account = None;
        let mut member: Option<SecretString> = None;
        for pick in picks {
            let org = found
                .orgs
                .iter()
                .find(|o| o.id == *pick || o.slug.as_deref() == Some(pick.as_str()))
                .map_or(pick.as_str(), |o| o.id.as_str());
            let from = match &member {
                None => OrgSessionSource::Intermediate(&found.session),
                Some(s) => OrgSessionSource::Member(s),
            };
            let session = p
                .adapter
                .open_org_session(&self.context(&p), from, org)
                .await?;
            if member.is_none() {
                member = session.tokens.refresh_token.clone();
            }
            account = Some(
                self.store_org_session(&p, &found.email, session, &found.orgs)
                    .await?,
            );
        }
        account.ok_or(Error::UnknownState)
    }

    /// Verifies and stores one organization's session under the person's account.
    pub(crate) async fn store_org_session(
        &self,
        p: &Resolved,
        email: &str,
        session: crate::providers::OrgSession,
        known: &[DiscoveredOrg],
    ) -> Result<Account> {
        let mut discovered = known.to_vec();
        discovered.push(session.org.clone());
        let facts = SignInFacts {
            org: Some(session.org.id.clone()),
            discovered: &discovered,
        };
        self.verify_and_store(p, session.tokens, facts, Some(email))
            .await
    }
}
