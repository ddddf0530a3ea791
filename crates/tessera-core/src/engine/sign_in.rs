//! Sign-in through the browser (authorization code + PKCE + state + nonce, back over the
//! deep link or a loopback address) and the device grant, and what every sign-in ends with:
//! the identity token verified, then the account stored in one transaction (keychain first,
//! metadata second; a failed metadata write puts the slot back as it was).

use std::future::Future;
use std::time::Duration;

use crate::account::{Account, AccountStatus, PendingWrite, State};
use crate::error::{Error, Result};
use crate::flow::{FLOW_TTL, FlowSecrets, PendingFlow, parse_callback, same_redirect};
use crate::jwt::{DecodedJwt, Expectations, TokenKind};
use crate::loopback::LoopbackReceiver;
use crate::provider::{OrgModel, RESERVED_PARAMS, RedirectMode};
use crate::providers::{BrowserStart, DiscoveredOrg, SignInMethod, SignInRequest};
use crate::vault::{Slot, TokenSet};

use super::types::{DeviceSignIn, SignInStart};
use super::{Resolved, Tessera};

/// What a sign-in learned besides its tokens.
#[derive(Default)]
pub(crate) struct SignInFacts<'a> {
    /// The organization the tokens are bound to.
    pub org: Option<String>,
    /// Organizations a discovery found for the person.
    pub discovered: &'a [DiscoveredOrg],
}

impl Tessera {
    /// The authorization parameters of a sign-in request, checked against what the
    /// provider's kind offers (an organization sign-in, a social provider).
    pub fn sign_in_params(&self, request: &SignInRequest) -> Result<Vec<(String, String)>> {
        let spec = self.provider(&request.provider)?.kind.spec();
        let mut params = request.params.clone();
        if let Some(oauth) = request.oauth_provider.as_deref().map(str::trim) {
            if !spec.sign_in.contains(&SignInMethod::OAuth) || oauth.is_empty() {
                return Err(Error::Unsupported(format!(
                    "a sign-in through \"{oauth}\" at a {} provider (only Stack Auth offers OAuth sign-in)",
                    spec.label
                )));
            }
            params.push((
                crate::providers::stack::OAUTH_PROVIDER_PARAM.into(),
                oauth.into(),
            ));
        }
        if request.someone_else {
            params.push(("prompt".into(), "login".into()));
        }
        if let Some(org) = request
            .org
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let param = spec.org_sign_in_param.ok_or_else(|| {
                Error::Unsupported(format!(
                    "signing in to an organization at a {} provider",
                    spec.label
                ))
            })?;
            params.push((param.into(), org.into()));
        }
        Ok(params)
    }

    /// Where a browser sign-in at `provider` comes back: its configured redirect, unless its
    /// kind accepts only loopback addresses.
    pub fn redirect_mode(&self, provider: &str) -> Result<RedirectMode> {
        let config = self.provider(provider)?;
        Ok(config.kind.spec().redirect.apply(config.redirect_mode))
    }

    /// Starts a browser sign-in returning to `redirect_uri` (the deep link or a loopback
    /// URI). `params` are extra authorization parameters for this sign-in only
    /// ([`Tessera::sign_in_params`] makes them from a request).
    pub async fn start_sign_in(
        &self,
        provider: &str,
        redirect_uri: &str,
        params: &[(String, String)],
    ) -> Result<SignInStart> {
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| RESERVED_PARAMS.contains(&k.as_str()))
        {
            return Err(Error::InvalidConfig(format!(
                "\"{k}\" is set by Tessera itself"
            )));
        }
        let p = self.resolve(provider).await?;
        let secrets = FlowSecrets::generate();
        let (url, with_nonce) = p
            .adapter
            .authorization_url(
                &self.context(&p),
                BrowserStart {
                    redirect_uri,
                    state: &secrets.state,
                    nonce: &secrets.nonce,
                    challenge: secrets.challenge,
                    params,
                },
            )
            .await?;
        let now = self.now();
        self.flows.insert(
            secrets.state.clone(),
            PendingFlow {
                provider: p.config.name.clone(),
                redirect_uri: redirect_uri.to_string(),
                created_at: now,
                verifier: secrets.verifier,
                nonce: with_nonce.then_some(secrets.nonce),
                org: requested_org(&p, params),
            },
        );
        Ok(SignInStart {
            flow_id: secrets.state,
            provider: p.config.name,
            authorization_url: url,
            expires_at: now.saturating_add(FLOW_TTL),
        })
    }

    /// Abandons a sign-in; a late callback for it is refused.
    pub fn cancel_sign_in(&self, flow_id: &str) -> bool {
        self.flows.cancel(flow_id, self.now())
    }

    /// Whether a sign-in is still waiting for its callback.
    pub fn is_sign_in_pending(&self, flow_id: &str) -> bool {
        self.flows.is_pending(flow_id)
    }

    /// Completes a browser sign-in from the redirect URL the provider sent the browser to.
    pub async fn complete_sign_in(&self, callback_url: &str) -> Result<Account> {
        let callback = parse_callback(callback_url)?;
        let flow = self.flows.take(&callback.state, self.now())?;
        if !same_redirect(&callback.url, &flow.redirect_uri) {
            return Err(Error::MalformedCallback(format!(
                "it arrived at {}:{} but the sign-in expects {}",
                callback.url.scheme(),
                callback.url.path(),
                flow.redirect_uri
            )));
        }
        let p = self.resolve(&flow.provider).await?;
        match &callback.iss {
            Some(iss) if *iss != p.metadata.issuer => {
                return Err(Error::IssuerMismatch {
                    expected: p.metadata.issuer.clone(),
                    got: iss.clone(),
                });
            }
            None if p.metadata.authorization_response_iss_parameter_supported => {
                return Err(Error::IssuerMismatch {
                    expected: p.metadata.issuer.clone(),
                    got: "(none)".into(),
                });
            }
            _ => {}
        }
        if let Some(error) = callback.error {
            return Err(Error::AuthorizationDenied {
                error,
                description: callback.error_description,
            });
        }
        let code = callback
            .code
            .ok_or_else(|| Error::MalformedCallback("no code".into()))?;
        // A code is spent once exchanged: a keychain that cannot keep the answer stops it here.
        self.vault.check_writable()?;
        let mut tokens = p
            .adapter
            .exchange_code(&self.context(&p), &code, flow.verifier, &flow.redirect_uri)
            .await?;
        tokens.nonce = flow.nonce;
        let facts = SignInFacts {
            org: flow.org,
            ..SignInFacts::default()
        };
        self.verify_and_store(&p, tokens, facts, None).await
    }

    /// A listener for `provider`'s loopback redirect: on the port its registered redirect
    /// names where the provider matches redirect URLs exactly, else on a free port.
    pub async fn loopback_receiver(&self, provider: &str) -> Result<LoopbackReceiver> {
        let config = self.provider(provider)?;
        match config.kind.adapter().loopback_port(&config) {
            Some(port) => LoopbackReceiver::bind_port(port).await,
            None => LoopbackReceiver::bind().await,
        }
    }

    /// The whole loopback sign-in: listen (see [`Tessera::loopback_receiver`]), hand the
    /// authorization URL to `on_start` (open the browser, print it), wait for the callback,
    /// complete. A sign-in that never comes back names the provider's likely cause.
    pub async fn sign_in_with_loopback(
        &self,
        provider: &str,
        params: &[(String, String)],
        on_start: impl FnOnce(&SignInStart),
        timeout: Duration,
        cancel: impl Future<Output = ()>,
    ) -> Result<Account> {
        let receiver = self.loopback_receiver(provider).await?;
        let start = self
            .start_sign_in(provider, &receiver.redirect_uri(), params)
            .await?;
        on_start(&start);
        let hint = || {
            self.provider(provider)
                .ok()
                .and_then(|c| c.kind.adapter().unanswered_hint())
                .map(String::from)
        };
        let url = tokio::select! {
            url = receiver.receive_for(&start.flow_id) => url?,
            _ = tokio::time::sleep(timeout) => {
                self.cancel_sign_in(&start.flow_id);
                return Err(Error::Timeout { what: "the browser sign-in".into(), hint: hint() });
            }
            _ = cancel => {
                self.cancel_sign_in(&start.flow_id);
                return Err(Error::Cancelled { what: "the sign-in".into(), hint: hint() });
            }
        };
        self.complete_sign_in(&url).await
    }

    /// Starts a device sign-in (RFC 8628); show `user_code` and `verification_uri`.
    pub async fn start_device_sign_in(&self, provider: &str) -> Result<DeviceSignIn> {
        let p = self.resolve(provider).await?;
        let authorization = p.adapter.start_device(&self.context(&p)).await?;
        Ok(DeviceSignIn {
            provider: p.config.name,
            authorization,
        })
    }

    /// Waits for the person to approve a device sign-in, then stores the account.
    pub async fn finish_device_sign_in(
        &self,
        device: &DeviceSignIn,
        cancel: impl Future<Output = ()>,
    ) -> Result<Account> {
        let p = self.resolve(&device.provider).await?;
        self.vault.check_writable()?;
        let ctx = self.context(&p);
        let tokens = tokio::select! {
            t = p.adapter.finish_device(&ctx, &device.authorization) => t?,
            _ = cancel => return Err(Error::cancelled("the device sign-in")),
        };
        self.verify_and_store(&p, tokens, SignInFacts::default(), None)
            .await
    }

    /// Verifies the token that proves who signed in (see [`crate::providers::Identity`]).
    /// `email` is the address a mailed link was sent to, where the provider's token names
    /// the person by it.
    pub(crate) async fn verify_identity(
        &self,
        p: &Resolved,
        tokens: &TokenSet,
        email: Option<&str>,
    ) -> Result<DecodedJwt> {
        let identity = p.adapter.identity();
        let (token, audience, access_token) = match identity.token {
            TokenKind::IdToken => (
                tokens
                    .id_token
                    .as_ref()
                    .ok_or_else(|| Error::TokenRejected {
                        token: "sign-in response".into(),
                        reason:
                            "the provider returned no ID token (is \"openid\" among the scopes?)"
                                .into(),
                    })?,
                Some(p.config.client_id.as_str()),
                Some(tokens.access_token.expose_secret()),
            ),
            TokenKind::AccessToken => (&tokens.access_token, p.config.audience.as_deref(), None),
        };
        let (issuer, audience) = p.expected_issuer(token.expose_secret(), audience);
        let expect = Expectations {
            kind: identity.token,
            issuer: &issuer,
            audience: audience.as_deref(),
            client_id: &p.config.client_id,
            nonce: tokens.nonce.as_deref(),
            access_token,
            now: self.now(),
        };
        let mut claims = self
            .verify(&p.metadata, token.expose_secret(), &expect)
            .await?
            .into_result(identity.label)?;
        if let Some(email) = email {
            claims.payload.insert("email".into(), email.into());
        }
        Ok(claims)
    }

    /// Verifies a sign-in's tokens and stores the account (see [`Tessera::store_sign_in`]).
    pub(crate) async fn verify_and_store(
        &self,
        p: &Resolved,
        tokens: TokenSet,
        facts: SignInFacts<'_>,
        email: Option<&str>,
    ) -> Result<Account> {
        let claims = self.verify_identity(p, &tokens, email).await?;
        let slot = match facts.org.as_deref() {
            Some(requested) => Slot::Org(p.adapter.confirm_org(&claims, requested)?),
            None => Slot::Main,
        };
        self.store_sign_in(p, tokens, &claims, slot, facts.discovered)
            .await
    }

    /// Stores a signed-in account whose identity `claims` were verified, in the account's
    /// transaction: the slot first, then the record (which must still have its provider, and
    /// may only be merged into an account of the same provider and subject); a failed record
    /// write puts the slot back.
    pub(crate) async fn store_sign_in(
        &self,
        p: &Resolved,
        tokens: TokenSet,
        claims: &DecodedJwt,
        slot: Slot,
        discovered: &[DiscoveredOrg],
    ) -> Result<Account> {
        let subject_claim = p.adapter.identity().subject_claim;
        let subject = claims
            .claim_str(subject_claim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::TokenRejected {
                token: "sign-in token".into(),
                reason: format!("it has no subject ({subject_claim})"),
            })?
            .to_string();
        let name = &p.config.name;
        let id = self
            .data
            .read()?
            .accounts
            .into_iter()
            .find(|a| a.provider == *name && a.subject == subject)
            .map_or_else(|| Account::id_for(name, &subject), |a| a.id);
        let txn = self.begin(&id).await?;
        let now = self.now();
        let current_org = p.adapter.current_org(claims).flatten();
        let restriction = p.adapter.restriction(claims);
        let merge = |s: &mut State, pending: Option<PendingWrite>| -> Result<Account> {
            s.provider(name)?;
            let mut account = match s.accounts.iter().position(|a| a.id == id) {
                Some(i) if s.accounts[i].provider != *name || s.accounts[i].subject != subject => {
                    return Err(Error::TokenRejected {
                        token: "sign-in token".into(),
                        reason: format!(
                            "its subject collides with account {id} of another person; nothing was stored"
                        ),
                    });
                }
                Some(i) => s.accounts.remove(i),
                None => Account {
                    id: id.clone(),
                    ..Account::new(name, &p.metadata.issuer, &subject, now)
                },
            };
            account.absorb_claims(claims);
            for o in discovered {
                if !account.orgs.contains(&o.id) && o.membership.ends_with("member") {
                    account.orgs.push(o.id.clone());
                }
                account.org_names.insert(o.id.clone(), o.name.clone());
            }
            if let Slot::Org(org_id) = &slot {
                if !account.signed_in_orgs.contains(org_id) {
                    account.signed_in_orgs.push(org_id.clone());
                }
                if !account.orgs.contains(org_id) {
                    account.orgs.push(org_id.clone());
                }
                account.current_org = Some(org_id.clone());
            }
            if let Some(team) = &current_org {
                if !account.orgs.contains(team) {
                    account.orgs.push(team.clone());
                }
                account.current_org = Some(team.clone());
            }
            account.status = AccountStatus::Active;
            account.restriction = restriction;
            account.updated_at = now;
            account.access_expires_at = tokens.expires_at;
            account.scope = tokens.scope.clone();
            account.pending = pending;
            s.accounts.push(account.clone());
            Ok(account)
        };
        if txn.account()?.is_some() {
            return txn.save_then(&slot, &tokens, || txn.update_state(|s| merge(s, None)));
        }
        // A first sign-in: the record (marked pending), the keychain entry, the record
        // complete. A process that dies in between leaves what the next one finishes or undoes.
        txn.update_state(|s| merge(s, Some(PendingWrite::SignIn)))?;
        let finished = txn
            .save(&slot, &tokens)
            .and_then(|()| txn.update(|a| a.pending = None));
        if let Err(e) = finished {
            let _ = txn.delete(&slot);
            let _ = txn.update_state(|s| {
                s.accounts.retain(|a| a.id != id);
                Ok(())
            });
            return Err(e);
        }
        txn.existing()
    }
}

/// The organization a sign-in asks for, where each organization is its own sign-in (the
/// kind's organization parameter, per sign-in or fixed in the provider's configuration).
fn requested_org(p: &Resolved, params: &[(String, String)]) -> Option<String> {
    let spec = p.adapter.spec();
    let param = spec.org_sign_in_param?;
    if spec.org_model != OrgModel::SignInPerOrg {
        return None;
    }
    params
        .iter()
        .rev()
        .find(|(k, _)| k == param)
        .map(|(_, v)| v.clone())
        .or_else(|| p.config.extra_params.get(param).cloned())
}
