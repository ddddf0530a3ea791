//! Tokens on demand and refresh. A stored token still valid for the asked-for time is handed
//! out without a lock; anything else refreshes inside the account's transaction, which makes
//! refreshes single-flight across threads and processes (a refresh someone else finished
//! meanwhile is reused). Order inside: the provider's answer → a rotated refresh token
//! persisted at once → the answer's identity token verified (and the subject compared) →
//! only then the new access and ID tokens stored and handed out.

use crate::account::{Account, AccountStatus, Restriction};
use crate::agent::TokenRequest;
use crate::error::{Error, Result};
use crate::jwt::{DecodedJwt, Expectations, TokenKind, decode_unverified_for_display};
use crate::secret::SecretString;
use crate::vault::{Slot, TokenSet};

use super::batch::{Batch, Deferred};
use super::txn::AccountTxn;
use super::types::{ClaimChange, IssuedToken, RefreshOutcome};
use super::warm::Stamp;
use super::{Resolved, Tessera};

/// Where a refresh hands its new access token (with the account's id) over before storing
/// it: once verified, and once the keychain holds everything the provider would still honour
/// (a rotated refresh token is stored first, right after the provider's answer), so nothing
/// is lost if the write of the new access token never lands. The agent answers its client
/// with it while the write goes on in the account's transaction.
pub type Handover = tokio::sync::oneshot::Sender<(String, IssuedToken)>;

/// What a refresh is given besides its transaction and plan.
#[derive(Default)]
pub(super) struct Given<'b> {
    /// The account, as read inside the transaction.
    pub account: Option<Account>,
    /// The plan's slot, when the caller read it inside the transaction.
    pub loaded: Option<TokenSet>,
    /// Where to hand the new access token over early.
    pub handover: Option<Handover>,
    /// Where the new tokens go instead of being stored at once (`refresh_all`); a rotated
    /// refresh token is still stored at once.
    pub batch: Option<&'b Batch>,
}

/// What a refresh changes in the account's record.
pub(super) struct AccountChange {
    /// Verified ID token claims the record takes its profile from.
    claims: Option<DecodedJwt>,
    current_org: Option<Option<String>>,
    /// For the account's own slot: the new expiry, and the restriction when the answer's
    /// identity token was verified.
    main: Option<(Option<u64>, Option<Option<Restriction>>)>,
}

impl AccountChange {
    pub fn apply(&self, a: &mut Account) {
        if let Some(c) = &self.claims {
            a.absorb_claims(c);
        }
        if let Some(org) = &self.current_org {
            a.current_org = org.clone();
        }
        if let Some((expires_at, restriction)) = &self.main {
            a.status = AccountStatus::Active;
            a.access_expires_at = *expires_at;
            if let Some(r) = restriction {
                a.restriction = *r;
            }
        }
    }
}

/// Seconds of validity the stored access token must still have to be handed out as is.
const MIN_USEFUL: u64 = 5;

/// Which refresh token to use and where the new access token goes. Usually one slot; for a
/// Logto organization token the account's refresh token buys an organization's access token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPlan {
    pub rt_slot: Slot,
    pub at_slot: Slot,
    pub extra: Vec<(String, String)>,
}

impl RefreshPlan {
    pub fn own(slot: Slot) -> Self {
        RefreshPlan {
            rt_slot: slot.clone(),
            at_slot: slot,
            extra: Vec::new(),
        }
    }
}

impl Tessera {
    /// A valid access token, refreshed when it has less than `min_valid` seconds left or
    /// when `force` is set.
    ///
    /// A token this process handed out before is handed out again without reading the
    /// keychain while nothing changed (see `warm`).
    pub async fn access_token(
        &self,
        query: &str,
        min_valid: u64,
        force: bool,
    ) -> Result<IssuedToken> {
        self.access_token_handing_over(query, min_valid, force, None)
            .await
    }

    /// [`Self::access_token`], handing a refreshed token over early when it may (see
    /// [`Handover`]).
    async fn access_token_handing_over(
        &self,
        query: &str,
        min_valid: u64,
        force: bool,
        handover: Option<Handover>,
    ) -> Result<IssuedToken> {
        let (state, digest) = Stamp::read_state(&self.data)?;
        let account = state.find_account(query)?.clone();
        let stamp = Stamp::of(&self.data, digest, &account.id);
        let min_valid = min_valid.max(MIN_USEFUL);
        if !force
            && account.status == AccountStatus::Active
            && let Some(warm) = self.warm.fresh(&account.id, &stamp, min_valid, self.now())
        {
            return Ok(warm);
        }
        let (plan, read) = self.default_plan_read(&account)?;
        let (tokens, refreshed, stamp) = self
            .fresh_tokens_stamped(&account, plan, read, (min_valid, force), stamp, handover)
            .await?;
        let issued = IssuedToken {
            expires_at: expiry(&tokens),
            token: tokens.access_token,
            refreshed,
        };
        self.warm.keep(&account.id, stamp, &issued);
        Ok(issued)
    }

    /// Reads the tokens this process keeps warm again, after another process changed the data
    /// directory, so the next request for them needs no keychain round trip. Only reads: an
    /// account whose stored token is no longer valid, or that is gone, is just retired.
    pub fn rewarm(&self) {
        for id in self.warm.accounts() {
            if !matches!(self.rewarm_account(&id), Ok(true)) {
                self.warm.forget(&id);
            }
        }
    }

    /// Whether account `id` has a valid token kept warm under the current stamp now.
    fn rewarm_account(&self, id: &str) -> Result<bool> {
        let (state, digest) = Stamp::read_state(&self.data)?;
        let account = state.find_account(id)?.clone();
        let stamp = Stamp::of(&self.data, digest, id);
        let now = self.now();
        if account.status != AccountStatus::Active {
            return Ok(false);
        }
        if self.warm.fresh(id, &stamp, MIN_USEFUL, now).is_some() {
            return Ok(true);
        }
        let (plan, read) = self.default_plan_read(&account)?;
        let stored = match read {
            Some(tokens) => Some(tokens),
            None => self.read_slot(&account, &plan.at_slot)?,
        };
        let Some(tokens) = stored.filter(|t| is_fresh(t, MIN_USEFUL, now)) else {
            return Ok(false);
        };
        let issued = IssuedToken {
            expires_at: expiry(&tokens),
            token: tokens.access_token,
            refreshed: false,
        };
        self.warm.keep(id, stamp, &issued);
        Ok(true)
    }

    /// The current ID token (refreshing first under the same rules as [`Self::access_token`]).
    pub async fn id_token(&self, query: &str, min_valid: u64, force: bool) -> Result<IssuedToken> {
        let account = self.account(query)?;
        let plan = self.default_plan(&account)?;
        let (tokens, refreshed) = self.fresh_tokens(&account, plan, min_valid, force).await?;
        let token = tokens
            .id_token
            .ok_or_else(|| Error::Unsupported("an ID token for this account".into()))?;
        let expires_at = decode_unverified_for_display(token.expose_secret())
            .ok()
            .and_then(|d| d.claim_u64("exp"));
        Ok(IssuedToken {
            token,
            expires_at,
            refreshed,
        })
    }

    /// What `tessera token` asks for: the account's (or an organization's) access token, or
    /// its ID token, valid for at least `min_valid` seconds; with the account's id.
    pub async fn token(&self, request: &TokenRequest) -> Result<(String, IssuedToken)> {
        self.token_handing_over(request, None).await
    }

    /// [`Self::token`]; a refreshed access token may be sent to `handover` before it is
    /// stored (see [`Handover`]), and the call returns once it is.
    pub async fn token_handing_over(
        &self,
        request: &TokenRequest,
        handover: Option<Handover>,
    ) -> Result<(String, IssuedToken)> {
        let (query, min_valid, force) = (&request.account, request.min_valid, request.force);
        let issued = match (&request.org, request.id_token) {
            (Some(org), _) => self.org_token(query, org, min_valid, force).await?,
            (None, true) => self.id_token(query, min_valid, force).await?,
            (None, false) => {
                self.access_token_handing_over(query, min_valid, force, handover)
                    .await?
            }
        };
        Ok((self.account(query)?.id, issued))
    }

    /// Refreshes now, whatever the expiry.
    pub async fn refresh(&self, query: &str) -> Result<RefreshOutcome> {
        let account = self.account(query)?;
        let plan = self.default_plan(&account)?;
        let txn = self.begin(&account.id).await?;
        let current = required(&account, &plan.at_slot, txn.load(&plan.at_slot)?)?;
        let given = Given {
            loaded: Some(current),
            ..Given::default()
        };
        self.refresh_now(&txn, &plan, given).await
    }

    /// Refreshes the plan's slot (which `given` holds) inside `txn`, and says what changed.
    pub(super) async fn refresh_now(
        &self,
        txn: &AccountTxn<'_>,
        plan: &RefreshPlan,
        given: Given<'_>,
    ) -> Result<RefreshOutcome> {
        let before = Observed::of(
            given
                .loaded
                .as_ref()
                .ok_or_else(|| Error::NeedsSignIn(txn.id().to_string()))?,
        );
        let (after, _) = self.refresh_in_loaded(txn, plan, None, given).await?;
        let after = Observed::of(&after);
        Ok(RefreshOutcome {
            account_id: txn.id().to_string(),
            rotated: before.refresh_token != after.refresh_token,
            previous_expires_at: before.expires_at,
            expires_at: after.expires_at,
            changed_claims: changed_claims(&before, &after),
        })
    }

    /// The token set `access_token` hands out: the account's own, or, for an account signed
    /// in only through organizations, its current organization's.
    pub(crate) fn default_plan(&self, account: &Account) -> Result<RefreshPlan> {
        Ok(self.default_plan_read(account)?.0)
    }

    /// [`Self::default_plan`], with the plan's tokens when finding it meant reading them.
    /// Read without a lock, the own slot may be missing only because a batch just moved it to
    /// the shelf after `account` was read: then it is looked for again where it lives now.
    fn default_plan_read(&self, account: &Account) -> Result<(RefreshPlan, Option<TokenSet>)> {
        let found = default_plan_by(account, |slot| self.read_slot(account, slot))?;
        if found.1.is_some() || account.current_org.is_none() || account.is_shelved(&Slot::Main) {
            return Ok(found);
        }
        match self.account(&account.id) {
            Ok(now) if now.is_shelved(&Slot::Main) => {
                default_plan_by(&now, |slot| self.read_slot(&now, slot))
            }
            _ => Ok(found),
        }
    }

    pub(crate) async fn fresh_tokens(
        &self,
        account: &Account,
        plan: RefreshPlan,
        min_valid: u64,
        force: bool,
    ) -> Result<(TokenSet, bool)> {
        let stamp = Stamp::none();
        let (tokens, refreshed, _) = self
            .fresh_tokens_stamped(account, plan, None, (min_valid, force), stamp, None)
            .await?;
        Ok((tokens, refreshed))
    }

    /// [`Self::fresh_tokens`], with the stamp the tokens may be kept warm under: `before`
    /// (taken before anything was read), or, after a refresh, the stamp of
    /// the state this refresh wrote, taken while the account's transaction still holds.
    /// `read` is the plan's slot when the caller has just read it.
    async fn fresh_tokens_stamped(
        &self,
        account: &Account,
        plan: RefreshPlan,
        read: Option<TokenSet>,
        (min_valid, force): (u64, bool),
        before: Stamp,
        handover: Option<Handover>,
    ) -> Result<(TokenSet, bool, Stamp)> {
        if account.status == AccountStatus::NeedsSignIn {
            return Err(Error::NeedsSignIn(account.id.clone()));
        }
        let min_valid = min_valid.max(MIN_USEFUL);
        if !force {
            let stored = match read {
                Some(tokens) => Some(tokens),
                None => self.read_slot(account, &plan.at_slot)?,
            };
            if let Some(tokens) = stored.filter(|t| is_fresh(t, min_valid, self.now())) {
                return Ok((tokens, false, before));
            }
        }
        let txn = self.begin(&account.id).await?;
        let skip_if_valid = (!force).then_some(min_valid);
        let given = Given {
            handover,
            ..Given::default()
        };
        let (tokens, refreshed) = self
            .refresh_in_loaded(&txn, &plan, skip_if_valid, given)
            .await?;
        let stamp = if refreshed {
            Stamp::now(&self.data, txn.revision()?)?
        } else {
            before
        };
        Ok((tokens, refreshed, stamp))
    }

    /// The token set in `slot`; reading needs no transaction, writing does.
    pub(crate) fn load_slot(&self, account: &Account, slot: &Slot) -> Result<TokenSet> {
        required(account, slot, self.read_slot(account, slot)?)
    }

    /// Refreshes inside the account's transaction (see the module docs). With
    /// `skip_if_valid`, a token someone else refreshed meanwhile is handed out instead.
    pub(crate) async fn refresh_in(
        &self,
        txn: &AccountTxn<'_>,
        plan: &RefreshPlan,
        skip_if_valid: Option<u64>,
    ) -> Result<(TokenSet, bool)> {
        self.refresh_in_loaded(txn, plan, skip_if_valid, Given::default())
            .await
    }

    /// [`Self::refresh_in`], with what the caller already has (see [`Given`]).
    async fn refresh_in_loaded(
        &self,
        txn: &AccountTxn<'_>,
        plan: &RefreshPlan,
        skip_if_valid: Option<u64>,
        given: Given<'_>,
    ) -> Result<(TokenSet, bool)> {
        let account = match given.account {
            Some(account) => account,
            None => txn.existing()?,
        };
        if account.status == AccountStatus::NeedsSignIn {
            return Err(Error::NeedsSignIn(account.id));
        }
        let now = self.now();
        let current = match given.loaded {
            Some(tokens) => Some(tokens),
            None => txn.load(&plan.at_slot)?,
        };
        let holder = match current {
            Some(current) if skip_if_valid.is_some_and(|min| is_fresh(&current, min, now)) => {
                return Ok((current, false));
            }
            Some(current) if plan.rt_slot == plan.at_slot => current,
            _ => required(&account, &plan.rt_slot, txn.load(&plan.rt_slot)?)?,
        };
        let Some(refresh_token) = holder.refresh_token.as_ref() else {
            return Err(self.grant_lost(txn, &plan.rt_slot)?);
        };
        let p = self.resolve(&account.provider).await?;
        let mut fresh = match p
            .adapter
            .refresh(&self.context(&p), refresh_token, &plan.extra)
            .await
        {
            Ok(t) => t,
            Err(e) if p.adapter.grant_is_gone(&e) => {
                return Err(self.grant_lost(txn, &plan.rt_slot)?);
            }
            Err(e) => return Err(e),
        };
        let new_rt = fresh.refresh_token.take();
        // A provider that leaves the refresh token out of its answer keeps the one it was sent.
        let rotated = new_rt
            .as_ref()
            .is_some_and(|new| Some(new.expose_secret()) != refresh_secret(&holder));
        let holder = TokenSet {
            refresh_token: new_rt.or(holder.refresh_token),
            ..holder
        };
        if rotated {
            // Persisted before anything else can fail: the old one is spent.
            txn.save(&plan.rt_slot, &holder)?;
        }
        let previous = if plan.at_slot == plan.rt_slot {
            Some(holder)
        } else {
            // An organization's access token; the ID token stays the account's.
            fresh.id_token = None;
            txn.load(&plan.at_slot)?
        };
        let claims = self
            .verify_refreshed(&p, &account, &mut fresh, previous.as_ref())
            .await?;
        if plan.at_slot == plan.rt_slot {
            fresh.refresh_token = previous.and_then(|h| h.refresh_token);
        }
        if let Some(handover) = given.handover {
            let issued = IssuedToken {
                token: fresh.access_token.clone(),
                expires_at: expiry(&fresh),
                refreshed: true,
            };
            if handover.send((account.id.clone(), issued)).is_ok() {
                // The receiver answers when this task next yields; storing blocks the thread.
                tokio::task::yield_now().await;
            }
        }
        let current_org = claims
            .as_ref()
            .and_then(|c| p.adapter.current_org(c))
            .or_else(|| {
                decode_unverified_for_display(fresh.access_token.expose_secret())
                    .ok()
                    .and_then(|at| p.adapter.current_org(&at))
            });
        let change = AccountChange {
            main: (plan.at_slot == Slot::Main).then(|| {
                let restriction = claims.as_ref().map(|c| p.adapter.restriction(c));
                (expiry(&fresh), restriction)
            }),
            claims: claims.filter(|_| p.adapter.identity().token == TokenKind::IdToken),
            current_org,
        };
        match given.batch {
            Some(batch) => batch.defer(Deferred {
                id: account.id.clone(),
                slot: plan.at_slot.clone(),
                tokens: fresh.clone(),
                change,
            }),
            None => {
                txn.save(&plan.at_slot, &fresh)?;
                txn.update(|a| change.apply(a))?;
            }
        }
        Ok((fresh, true))
    }

    /// Checks a refresh answer's identity token, if it carries one: an ID token must pass
    /// every check and name the account's subject (else the previous ID token is kept); a
    /// provider whose access token proves identity has it verified.
    async fn verify_refreshed(
        &self,
        p: &Resolved,
        account: &Account,
        fresh: &mut TokenSet,
        previous: Option<&TokenSet>,
    ) -> Result<Option<DecodedJwt>> {
        let identity = p.adapter.identity();
        let (token, audience, label) = match (identity.token, fresh.id_token.as_ref()) {
            (TokenKind::IdToken, None) => {
                fresh.id_token = previous.and_then(|t| t.id_token.clone());
                fresh.nonce = previous.and_then(|t| t.nonce.clone());
                fresh.id_token_matches_access_token = false;
                return Ok(None);
            }
            (TokenKind::IdToken, Some(id)) => (
                id.clone(),
                Some(p.config.client_id.as_str()),
                "refreshed ID token",
            ),
            (TokenKind::AccessToken, _) => (
                fresh.access_token.clone(),
                p.config.audience.as_deref(),
                "refreshed access token",
            ),
        };
        let (issuer, audience) = p.expected_issuer(token.expose_secret(), audience);
        let expect = Expectations {
            kind: identity.token,
            issuer: &issuer,
            audience: audience.as_deref(),
            client_id: &p.config.client_id,
            nonce: None,
            access_token: (identity.token == TokenKind::IdToken)
                .then(|| fresh.access_token.expose_secret()),
            now: self.now(),
        };
        let claims = self
            .verify(&p.metadata, token.expose_secret(), &expect)
            .await?
            .into_result(label)?;
        if let Some(subject) = claims.claim_str(identity.subject_claim)
            && subject != account.subject
        {
            return Err(Error::TokenRejected {
                token: label.into(),
                reason: "it names a different subject".into(),
            });
        }
        if identity.token == TokenKind::IdToken {
            fresh.nonce = None;
            fresh.id_token_matches_access_token = true;
        }
        Ok(Some(claims))
    }

    /// The provider refused a refresh token (`invalid_grant`): the account (or only that
    /// organization's sign-in) needs a new sign-in. Nothing is deleted.
    fn grant_lost(&self, txn: &AccountTxn<'_>, slot: &Slot) -> Result<Error> {
        txn.update(|a| match slot {
            Slot::Main => a.status = AccountStatus::NeedsSignIn,
            Slot::Org(org) => a.signed_in_orgs.retain(|o| o != org),
        })?;
        Ok(match slot {
            Slot::Main => Error::NeedsSignIn(txn.id().to_string()),
            Slot::Org(org) => Error::OrgSignInRequired {
                account: txn.id().to_string(),
                org: org.clone(),
            },
        })
    }
}

/// The default plan of `account` (see [`Tessera::default_plan`]), reading slots with `read`;
/// with the plan's tokens when finding it meant reading them.
pub(super) fn default_plan_by(
    account: &Account,
    read: impl FnOnce(&Slot) -> Result<Option<TokenSet>>,
) -> Result<(RefreshPlan, Option<TokenSet>)> {
    let Some(org) = &account.current_org else {
        return Ok((RefreshPlan::own(Slot::Main), None));
    };
    Ok(match read(&Slot::Main)? {
        None => (RefreshPlan::own(Slot::Org(org.clone())), None),
        main => (RefreshPlan::own(Slot::Main), main),
    })
}

/// What `slot` held, or the error of a slot that must be signed into first.
pub(super) fn required(
    account: &Account,
    slot: &Slot,
    tokens: Option<TokenSet>,
) -> Result<TokenSet> {
    tokens.ok_or_else(|| match slot {
        Slot::Main => Error::NeedsSignIn(account.id.clone()),
        Slot::Org(org) => Error::OrgSignInRequired {
            account: account.id.clone(),
            org: org.clone(),
        },
    })
}

/// When the access token expires: as the provider said, else the JWT's own `exp`.
pub(crate) fn expiry(tokens: &TokenSet) -> Option<u64> {
    tokens.expires_at.or_else(|| {
        decode_unverified_for_display(tokens.access_token.expose_secret())
            .ok()
            .and_then(|d| d.claim_u64("exp"))
    })
}

fn is_fresh(tokens: &TokenSet, min_valid: u64, now: u64) -> bool {
    expiry(tokens).is_none_or(|e| e > now.saturating_add(min_valid))
}

fn refresh_secret(tokens: &TokenSet) -> Option<&str> {
    tokens.refresh_token.as_ref().map(|t| t.expose_secret())
}

/// What a refresh's outcome compares of a token set: a digest of its refresh token, its
/// expiry and its tokens' claims (nothing secret is kept).
struct Observed {
    refresh_token: Option<[u8; 32]>,
    expires_at: Option<u64>,
    access_claims: Option<serde_json::Map<String, serde_json::Value>>,
    id_claims: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Observed {
    fn of(tokens: &TokenSet) -> Observed {
        use sha2::{Digest, Sha256};
        let claims = |t: &SecretString| {
            decode_unverified_for_display(t.expose_secret())
                .ok()
                .map(|d| d.payload)
        };
        Observed {
            refresh_token: refresh_secret(tokens).map(|rt| Sha256::digest(rt).into()),
            expires_at: tokens.expires_at,
            access_claims: claims(&tokens.access_token),
            id_claims: tokens.id_token.as_ref().and_then(claims),
        }
    }
}

/// Claims that differ between two token sets: the access tokens' when both are JWTs,
/// otherwise the ID tokens'.
fn changed_claims(before: &Observed, after: &Observed) -> Vec<ClaimChange> {
    let (old, new) = match (&before.access_claims, &after.access_claims) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => (
            before.id_claims.clone().unwrap_or_default(),
            after.id_claims.clone().unwrap_or_default(),
        ),
    };
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| old.get(*n) != new.get(*n))
        .map(|n| ClaimChange {
            name: n.clone(),
            before: old.get(n).cloned(),
            after: new.get(n).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn with_access_token(access_token: String, expires_at: Option<u64>) -> TokenSet {
        TokenSet {
            access_token: SecretString::new(access_token),
            token_type: "Bearer".into(),
            expires_at,
            refresh_token: None,
            id_token: None,
            scope: None,
            nonce: None,
            id_token_matches_access_token: false,
            obtained_at: 0,
        }
    }

    fn jwt_expiring_at(exp: u64) -> String {
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.sig",
            part(serde_json::json!({"alg": "RS256"})),
            part(serde_json::json!({"exp": exp}))
        )
    }

    #[test]
    fn a_token_without_expires_in_expires_by_its_jwt_exp() {
        let now = 1_800_000_000;
        let expired = with_access_token(jwt_expiring_at(now - 10), None);
        assert!(!is_fresh(&expired, 30, now), "refreshed by the JWT's exp");
        assert_eq!(expiry(&expired), Some(now - 10));
        let valid = with_access_token(jwt_expiring_at(now + 3600), None);
        assert!(is_fresh(&valid, 30, now));
        let said = with_access_token(jwt_expiring_at(now + 3600), Some(now + 5));
        assert!(!is_fresh(&said, 30, now), "the provider's expires_in wins");
        let opaque = with_access_token("opaque".into(), None);
        assert!(
            is_fresh(&opaque, 30, now),
            "nothing says when an opaque token expires"
        );
    }

    #[test]
    fn far_future_expiry_and_validity_do_not_overflow() {
        let token = with_access_token("opaque".into(), Some(u64::MAX));
        assert!(!is_fresh(&token, u64::MAX, u64::MAX));
        assert!(is_fresh(&token, u64::MAX - 1, 0));
    }
}
