//! `Tessera`: the one entry point front ends use. It ties the data directory, the vault,
//! the provider endpoints and the flows together and keeps the cross-cutting promises:
//!
//! - a sign-in stores an account only after its token passed every check (the ID token of an
//!   OpenID provider, the access token of Stack Auth and Stytch B2B), keychain first and
//!   metadata second, so a failure leaves no half-written account;
//! - refreshes of one account are single-flight across threads (a mutex) and processes (a
//!   file lock), re-read the keychain under the lock, and persist a rotated refresh token
//!   before the new access token is handed out;
//! - `invalid_grant` marks the account `needs_sign_in` and deletes nothing;
//! - any other failure changes nothing stored.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::account::{Account, AccountStatus, DataDir, State};
use crate::claims::{ClaimRow, explain_claims, explain_header};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::flow::{FlowSecrets, PendingFlow, PendingFlows, parse_callback, same_redirect};
use crate::fsutil::FileLock;
use crate::grant::{DeviceAuthorization, Endpoint, check_private_key};
use crate::http::{HttpClient, HttpConfig};
use crate::jwt::{
    Check, CheckStatus, DecodedJwt, Expectations, JwksCache, TokenKind, Verification,
};
use crate::loopback::LoopbackReceiver;
use crate::provider::{
    ClientAuth, Discovery, OrgModel, ProviderConfig, ProviderKind, ProviderMetadata,
    RESERVED_PARAMS,
};
use crate::secret::SecretString;
use crate::vault::{SecretStore, Slot, TokenSet, Vault};

/// What the core is built from; tests swap each part.
pub struct Options {
    pub data_dir: PathBuf,
    pub store: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub http: HttpConfig,
}

/// A browser sign-in that has started.
#[derive(Debug, Clone, Serialize)]
pub struct SignInStart {
    /// Identifies the flow (it is the `state` parameter, which the URL carries anyway).
    pub flow_id: String,
    pub provider: String,
    pub authorization_url: String,
    pub expires_at: u64,
}

/// A device sign-in waiting for the person to approve it elsewhere.
#[derive(Debug)]
pub struct DeviceSignIn {
    pub provider: String,
    pub authorization: DeviceAuthorization,
}

/// A token handed out to a caller.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: SecretString,
    pub expires_at: Option<u64>,
    pub refreshed: bool,
}

/// What a refresh changed.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshOutcome {
    pub account_id: String,
    pub rotated: bool,
    pub previous_expires_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub changed_claims: Vec<ClaimChange>,
}

/// One claim that differs between the old and the new token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A token explained: header and claims with their meaning, and each verification check.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimsReport {
    pub account_id: String,
    /// `access_token` or `id_token`.
    pub token: String,
    /// `jwt` or `opaque`.
    pub format: String,
    pub header: Vec<ClaimRow>,
    pub claims: Vec<ClaimRow>,
    pub checks: Vec<Check>,
    pub verified: bool,
    pub expires_at: Option<u64>,
}

/// What signing out did.
#[derive(Debug, Clone, Serialize)]
pub struct SignOutOutcome {
    pub account_id: String,
    pub revoked: bool,
    /// Open this to end the provider's browser session (RP-initiated logout), if offered.
    pub logout_url: Option<String>,
}

/// See the module docs.
pub struct Tessera {
    data: DataDir,
    vault: Vault,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    discovery: Discovery,
    jwks: JwksCache,
    flows: PendingFlows,
    pub(crate) email_flows: crate::stytch::EmailFlows,
    /// Stack Auth: the nonce of the last code mailed per provider, and when.
    pub(crate) mailed_codes: Mutex<HashMap<String, (SecretString, u64)>>,
    account_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

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

/// Seconds of validity the stored access token must still have to be handed out as is.
const MIN_USEFUL: u64 = 5;

impl Tessera {
    pub fn open(options: Options) -> Result<Self> {
        let data = DataDir::open(&options.data_dir)?;
        let namespace = data.read()?.namespace;
        Ok(Tessera {
            discovery: Discovery::new(data.cache_dir()),
            flows: PendingFlows::with_journal(data.cache_dir()),
            email_flows: Default::default(),
            mailed_codes: Default::default(),
            vault: Vault::new(options.store, &namespace),
            data,
            clock: options.clock,
            http: HttpClient::new(options.http)?,
            jwks: JwksCache::default(),
            account_locks: Mutex::new(HashMap::new()),
        })
    }

    /// `$XDG_DATA_HOME/dev.tessera` (or the platform's equivalent).
    pub fn default_data_dir() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("dev.tessera")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.root()
    }

    /// The keychain account name under which an account's tokens are stored.
    pub fn keychain_key(&self, account_id: &str) -> String {
        self.vault.account_key(account_id)
    }

    /// Unix seconds on the core's clock (the injected one in tests).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    pub(crate) fn vault(&self) -> &Vault {
        &self.vault
    }

    // ---- providers -------------------------------------------------------------------

    /// Registers a provider after checking its discovery document. The credential (client
    /// secret or private key) goes to the keychain, never into the state file.
    pub async fn add_provider(
        &self,
        mut config: ProviderConfig,
        credential: Option<SecretString>,
    ) -> Result<ProviderConfig> {
        config.validate()?;
        match (config.client_auth, &credential) {
            (auth, None) if auth.needs_secret() => {
                return Err(Error::InvalidConfig(format!(
                    "{auth:?} needs a client secret (--client-secret-stdin)"
                )));
            }
            (ClientAuth::PrivateKeyJwt, None) => {
                return Err(Error::InvalidConfig(
                    "private_key_jwt needs a private key (--private-key-file)".into(),
                ));
            }
            (ClientAuth::PrivateKeyJwt, Some(key)) => check_private_key(key)?,
            (ClientAuth::None, Some(_)) => {
                return Err(Error::InvalidConfig(
                    "a public client (auth none) takes no secret".into(),
                ));
            }
            _ => {}
        }
        if self.data.read()?.provider(&config.name).is_ok() {
            return Err(Error::ProviderExists(config.name));
        }
        if config.kind.is_oidc() {
            let metadata = crate::provider::fetch(&self.http, &config.issuer).await?;
            config.issuer = metadata.issuer.clone();
        } else {
            let metadata = ProviderMetadata::synthesized(&config)?;
            let jwks = url::Url::parse(&metadata.jwks_uri)
                .map_err(|e| Error::InvalidConfig(format!("bad API base URL: {e}")))?;
            self.http.get_json::<Value>(&jwks).await?;
        }
        if let Some(c) = &credential {
            self.vault.save_client_credential(&config.name, c)?;
        }
        let saved = self.data.update(|s| {
            if s.provider(&config.name).is_ok() {
                return Err(Error::ProviderExists(config.name.clone()));
            }
            s.providers.push(config.clone());
            Ok(config.clone())
        });
        if saved.is_err() && credential.is_some() {
            let _ = self.vault.delete_client_credential(&config.name);
        }
        saved
    }

    /// The provider registered under `name`.
    pub fn provider(&self, name: &str) -> Result<ProviderConfig> {
        self.data.read()?.provider(name).cloned()
    }

    /// Changes an account's metadata under the state lock.
    pub(crate) fn update_account(
        &self,
        id: &str,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account> {
        self.data.update(|s| {
            let a = s.account_mut(id)?;
            change(a);
            Ok(a.clone())
        })
    }

    pub fn providers(&self) -> Result<Vec<ProviderConfig>> {
        Ok(self.data.read()?.providers)
    }

    /// Removes a provider that has no accounts left.
    pub fn remove_provider(&self, name: &str) -> Result<()> {
        let state = self.data.read()?;
        let issuer = state.provider(name)?.issuer.clone();
        let accounts = state.accounts.iter().filter(|a| a.provider == name).count();
        if accounts > 0 {
            return Err(Error::InvalidConfig(format!(
                "\"{name}\" still has {accounts} account(s); sign out of them first (tessera logout)"
            )));
        }
        self.vault.delete_client_credential(name)?;
        self.data.update(|s| {
            s.providers.retain(|p| p.name != name);
            Ok(())
        })?;
        self.discovery.forget(&issuer);
        Ok(())
    }

    pub(crate) async fn provider_context(
        &self,
        name: &str,
    ) -> Result<(ProviderConfig, ProviderMetadata, Option<SecretString>)> {
        let config = self.data.read()?.provider(name)?.clone();
        let metadata = if config.kind.is_oidc() {
            self.discovery
                .metadata(&self.http, &config.issuer, self.now())
                .await?
        } else {
            ProviderMetadata::synthesized(&config)?
        };
        let credential = match config.client_auth {
            ClientAuth::None => None,
            _ => self.vault.load_client_credential(name)?,
        };
        Ok((config, metadata, credential))
    }

    pub(crate) fn stack<'a>(&'a self, config: &'a ProviderConfig) -> crate::stack::StackApi<'a> {
        crate::stack::StackApi {
            config,
            http: self.http(),
            now: self.now(),
        }
    }

    pub(crate) fn endpoint<'a>(
        &'a self,
        config: &'a ProviderConfig,
        metadata: &'a ProviderMetadata,
        credential: Option<&'a SecretString>,
    ) -> Endpoint<'a> {
        Endpoint {
            config,
            metadata,
            credential,
            http: &self.http,
            now: self.now(),
        }
    }

    // ---- sign-in ---------------------------------------------------------------------

    /// Starts a browser sign-in returning to `redirect_uri` (the deep link or a loopback
    /// URI). `params` are extra authorization parameters for this sign-in only; a Stack Auth
    /// sign-in names its OAuth provider there ([`crate::stack::OAUTH_PROVIDER_PARAM`]).
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
        let (config, metadata, credential) = self.provider_context(provider).await?;
        let secrets = FlowSecrets::generate();
        let (url, nonce) = if config.kind == ProviderKind::StackAuth {
            let url = self
                .stack(&config)
                .authorization_url(redirect_uri, &secrets.state, secrets.challenge, params)
                .await?;
            (url, None)
        } else {
            let endpoint = self.endpoint(&config, &metadata, credential.as_ref());
            let url = endpoint.authorization_url(
                redirect_uri,
                &secrets.state,
                &secrets.nonce,
                secrets.challenge,
                params,
            )?;
            (url, Some(secrets.nonce))
        };
        let now = self.now();
        self.flows.insert(
            secrets.state.clone(),
            PendingFlow {
                provider: config.name.clone(),
                redirect_uri: redirect_uri.to_string(),
                created_at: now,
                verifier: secrets.verifier,
                nonce,
                org: requested_org(&config, params),
            },
        );
        Ok(SignInStart {
            flow_id: secrets.state,
            provider: config.name,
            authorization_url: url.to_string(),
            expires_at: now + crate::flow::FLOW_TTL,
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
        let (config, metadata, credential) = self.provider_context(&flow.provider).await?;
        match &callback.iss {
            Some(iss) if *iss != metadata.issuer => {
                return Err(Error::IssuerMismatch {
                    expected: metadata.issuer,
                    got: iss.clone(),
                });
            }
            None if metadata.authorization_response_iss_parameter_supported => {
                return Err(Error::IssuerMismatch {
                    expected: metadata.issuer,
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
        if config.kind == ProviderKind::StackAuth {
            let tokens = self
                .stack(&config)
                .exchange_code(&code, &flow.verifier, &flow.redirect_uri)
                .await?;
            return self.store_stack_sign_in(&config, &metadata, tokens).await;
        }
        let endpoint = self.endpoint(&config, &metadata, credential.as_ref());
        let mut tokens = endpoint
            .exchange_code(code, flow.verifier, &flow.redirect_uri)
            .await?;
        tokens.nonce = flow.nonce;
        self.store_sign_in(&config, &metadata, tokens, flow.org)
            .await
    }

    /// The whole loopback sign-in: listen on a random port, hand the authorization URL to
    /// `on_start` (open the browser, print it), wait for the callback, complete.
    pub async fn sign_in_with_loopback(
        &self,
        provider: &str,
        params: &[(String, String)],
        on_start: impl FnOnce(&SignInStart),
        timeout: Duration,
        cancel: impl Future<Output = ()>,
    ) -> Result<Account> {
        let receiver = LoopbackReceiver::bind().await?;
        let start = self
            .start_sign_in(provider, &receiver.redirect_uri(), params)
            .await?;
        on_start(&start);
        let url = tokio::select! {
            url = receiver.receive_for(&start.flow_id) => url?,
            _ = tokio::time::sleep(timeout) => {
                self.cancel_sign_in(&start.flow_id);
                return Err(Error::Timeout("the browser sign-in".into()));
            }
            _ = cancel => {
                self.cancel_sign_in(&start.flow_id);
                return Err(Error::Cancelled("the sign-in".into()));
            }
        };
        self.complete_sign_in(&url).await
    }

    /// Starts a device sign-in (RFC 8628); show `user_code` and `verification_uri`.
    pub async fn start_device_sign_in(&self, provider: &str) -> Result<DeviceSignIn> {
        let (config, metadata, credential) = self.provider_context(provider).await?;
        let authorization = self
            .endpoint(&config, &metadata, credential.as_ref())
            .start_device()
            .await?;
        Ok(DeviceSignIn {
            provider: config.name,
            authorization,
        })
    }

    /// Waits for the person to approve a device sign-in, then stores the account.
    pub async fn finish_device_sign_in(
        &self,
        device: &DeviceSignIn,
        cancel: impl Future<Output = ()>,
    ) -> Result<Account> {
        let (config, metadata, credential) = self.provider_context(&device.provider).await?;
        let endpoint = self.endpoint(&config, &metadata, credential.as_ref());
        let tokens = tokio::select! {
            t = endpoint.finish_device(&device.authorization) => t?,
            _ = cancel => return Err(Error::Cancelled("the device sign-in".into())),
        };
        self.store_sign_in(&config, &metadata, tokens, None).await
    }

    async fn store_sign_in(
        &self,
        config: &ProviderConfig,
        metadata: &ProviderMetadata,
        tokens: TokenSet,
        org: Option<String>,
    ) -> Result<Account> {
        let id_token = tokens
            .id_token
            .as_ref()
            .ok_or_else(|| Error::TokenRejected {
                token: "sign-in response".into(),
                reason: "the provider returned no ID token (is \"openid\" among the scopes?)"
                    .into(),
            })?;
        let now = self.now();
        let expect = Expectations {
            kind: TokenKind::IdToken,
            issuer: &metadata.issuer,
            audience: Some(&config.client_id),
            client_id: &config.client_id,
            nonce: tokens.nonce.as_deref(),
            access_token: Some(tokens.access_token.expose_secret()),
            now,
        };
        let claims = self
            .verify(metadata, id_token.expose_secret(), &expect)
            .await?
            .into_result("ID token")?;
        let slot = match org.as_deref() {
            Some(requested) => Slot::Org(confirm_org(&claims, requested)?),
            None => Slot::Main,
        };
        self.store_account(config, metadata, tokens, &claims, slot)
    }

    /// Stores a signed-in account whose identity `claims` were verified: keychain first, then
    /// metadata; if the metadata cannot be written the keychain entry is removed again.
    pub(crate) fn store_account(
        &self,
        config: &ProviderConfig,
        metadata: &ProviderMetadata,
        tokens: TokenSet,
        claims: &DecodedJwt,
        slot: Slot,
    ) -> Result<Account> {
        let now = self.now();
        let subject = claims
            .claim_str(if config.kind == ProviderKind::StytchB2b {
                "email"
            } else {
                "sub"
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::TokenRejected {
                token: "sign-in token".into(),
                reason: "it has no subject".into(),
            })?
            .to_string();
        let id = Account::id_for(&config.name, &subject);
        self.vault.save_slot(&id, &slot, &tokens)?;
        let stored = self.data.update(|s| {
            let existing = s.accounts.iter().position(|a| a.id == id);
            let mut account = match existing {
                Some(i) => s.accounts.remove(i),
                None => Account::new(&config.name, &metadata.issuer, &subject, now),
            };
            account.absorb_claims(claims);
            if let Slot::Org(org_id) = &slot {
                if !account.signed_in_orgs.contains(org_id) {
                    account.signed_in_orgs.push(org_id.clone());
                }
                account.current_org = Some(org_id.clone());
            }
            account.status = AccountStatus::Active;
            account.updated_at = now;
            account.access_expires_at = tokens.expires_at;
            account.scope = tokens.scope.clone();
            s.accounts.push(account.clone());
            Ok(account)
        });
        if stored.is_err() {
            let _ = self.vault.delete_slot(&id, &slot);
        }
        stored
    }

    pub(crate) async fn verify(
        &self,
        metadata: &ProviderMetadata,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Verification> {
        crate::jwt::verify(&self.jwks, &self.http, &metadata.jwks_uri, token, expect).await
    }

    // ---- accounts and tokens ---------------------------------------------------------

    pub fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.data.read()?.accounts)
    }

    /// The account `query` names: its id, or an unambiguous email or subject.
    pub fn account(&self, query: &str) -> Result<Account> {
        self.data.read()?.find_account(query).cloned()
    }

    /// A valid access token, refreshed when it has less than `min_valid` seconds left or
    /// when `force` is set.
    pub async fn access_token(
        &self,
        query: &str,
        min_valid: u64,
        force: bool,
    ) -> Result<IssuedToken> {
        let account = self.account(query)?;
        let plan = self.default_plan(&account)?;
        let (tokens, refreshed) = self.fresh_tokens(&account, plan, min_valid, force).await?;
        Ok(IssuedToken {
            token: tokens.access_token,
            expires_at: tokens.expires_at,
            refreshed,
        })
    }

    /// The current ID token (refreshing first under the same rules as [`Self::access_token`]).
    pub async fn id_token(&self, query: &str, min_valid: u64, force: bool) -> Result<IssuedToken> {
        let account = self.account(query)?;
        let plan = self.default_plan(&account)?;
        let (tokens, refreshed) = self.fresh_tokens(&account, plan, min_valid, force).await?;
        let token = tokens
            .id_token
            .ok_or_else(|| Error::Unsupported("an ID token for this account".into()))?;
        let expires_at = crate::jwt::decode_unverified_for_display(token.expose_secret())
            .ok()
            .and_then(|d| d.claim_u64("exp"));
        Ok(IssuedToken {
            token,
            expires_at,
            refreshed,
        })
    }

    /// Refreshes now, whatever the expiry.
    pub async fn refresh(&self, query: &str) -> Result<RefreshOutcome> {
        let account = self.account(query)?;
        let plan = self.default_plan(&account)?;
        let before = self.load_slot(&account, &plan.at_slot)?;
        let (after, _) = self.refresh_single_flight(&account.id, &plan, None).await?;
        Ok(RefreshOutcome {
            account_id: account.id,
            rotated: refresh_secret(&before) != refresh_secret(&after),
            previous_expires_at: before.expires_at,
            expires_at: after.expires_at,
            changed_claims: changed_claims(&before, &after),
        })
    }

    /// The token set `access_token` hands out: the account's own, or, for an account signed
    /// in only through organizations, its current organization's.
    pub(crate) fn default_plan(&self, account: &Account) -> Result<RefreshPlan> {
        if let Some(org) = &account.current_org
            && self.vault.load_slot(&account.id, &Slot::Main)?.is_none()
        {
            return Ok(RefreshPlan::own(Slot::Org(org.clone())));
        }
        Ok(RefreshPlan::own(Slot::Main))
    }

    pub(crate) async fn fresh_tokens(
        &self,
        account: &Account,
        plan: RefreshPlan,
        min_valid: u64,
        force: bool,
    ) -> Result<(TokenSet, bool)> {
        if account.status == AccountStatus::NeedsSignIn {
            return Err(Error::NeedsSignIn(account.id.clone()));
        }
        let min_valid = min_valid.max(MIN_USEFUL);
        if !force
            && let Some(tokens) = self.vault.load_slot(&account.id, &plan.at_slot)?
            && is_fresh(&tokens, min_valid, self.now())
        {
            return Ok((tokens, false));
        }
        self.refresh_single_flight(&account.id, &plan, (!force).then_some(min_valid))
            .await
    }

    fn load_slot(&self, account: &Account, slot: &Slot) -> Result<TokenSet> {
        self.vault
            .load_slot(&account.id, slot)?
            .ok_or_else(|| match slot {
                Slot::Main => Error::NeedsSignIn(account.id.clone()),
                Slot::Org(org) => Error::OrgSignInRequired {
                    account: account.id.clone(),
                    org: org.clone(),
                },
            })
    }

    fn account_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.account_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Refreshes one account with at most one refresh in flight across threads and
    /// processes (whatever the slot: a Logto organization token rotates the account's refresh
    /// token too). With `skip_if_valid`, a refresh someone else finished meanwhile is reused.
    pub(crate) async fn refresh_single_flight(
        &self,
        id: &str,
        plan: &RefreshPlan,
        skip_if_valid: Option<u64>,
    ) -> Result<(TokenSet, bool)> {
        let lock = self.account_lock(id);
        let _in_process = lock.lock().await;
        let _across_processes = FileLock::acquire_async(self.data.refresh_lock(id)).await?;

        let account = self.data.read()?.find_account(id)?.clone();
        if account.status == AccountStatus::NeedsSignIn {
            return Err(Error::NeedsSignIn(account.id));
        }
        let current = self.vault.load_slot(&account.id, &plan.at_slot)?;
        if let Some(min_valid) = skip_if_valid
            && let Some(current) = &current
            && is_fresh(current, min_valid, self.now())
        {
            return Ok((self.load_slot(&account, &plan.at_slot)?, false));
        }
        let holder = self.load_slot(&account, &plan.rt_slot)?;
        let Some(refresh_token) = holder.refresh_token.clone() else {
            return Err(self.grant_lost(&account, &plan.rt_slot)?);
        };
        let (config, metadata, credential) = self.provider_context(&account.provider).await?;
        let refreshed = match config.kind {
            ProviderKind::StackAuth => self.stack(&config).refresh(&refresh_token).await,
            ProviderKind::StytchB2b => self
                .stytch(&config, credential.as_ref())
                .authenticate_session(&refresh_token)
                .await
                .map(|s| s.tokens),
            _ => {
                self.endpoint(&config, &metadata, credential.as_ref())
                    .refresh(&refresh_token, &plan.extra)
                    .await
            }
        };
        let mut fresh = match refreshed {
            Ok(t) => t,
            Err(e) if e.grant_is_gone() => {
                return Err(self.grant_lost(&account, &plan.rt_slot)?);
            }
            Err(e) => return Err(e),
        };

        // Persist the (possibly rotated) refresh token before anything else can fail.
        if plan.rt_slot != plan.at_slot {
            let rotated = TokenSet {
                refresh_token: fresh.refresh_token.take().or(holder.refresh_token),
                ..holder
            };
            self.vault.save_slot(&account.id, &plan.rt_slot, &rotated)?;
            fresh.id_token = None;
            self.vault.save_slot(&account.id, &plan.at_slot, &fresh)?;
            return Ok((fresh, true));
        }
        let previous = current.unwrap_or(holder);
        let new_id_token = fresh.id_token.take();
        fresh.id_token = previous.id_token.clone();
        fresh.nonce = previous.nonce.clone();
        fresh.id_token_matches_access_token = false;
        self.vault.save_slot(&account.id, &plan.at_slot, &fresh)?;

        let mut verified_claims: Option<DecodedJwt> = None;
        if let Some(id_token) = new_id_token {
            let expect = Expectations {
                kind: TokenKind::IdToken,
                issuer: &metadata.issuer,
                audience: Some(&config.client_id),
                client_id: &config.client_id,
                nonce: None,
                access_token: Some(fresh.access_token.expose_secret()),
                now: self.now(),
            };
            let claims = self
                .verify(&metadata, id_token.expose_secret(), &expect)
                .await?
                .into_result("refreshed ID token")?;
            if claims.claim_str("sub") != Some(account.subject.as_str()) {
                return Err(Error::TokenRejected {
                    token: "refreshed ID token".into(),
                    reason: "it names a different subject".into(),
                });
            }
            fresh.id_token = Some(id_token);
            fresh.nonce = None;
            fresh.id_token_matches_access_token = true;
            self.vault.save_slot(&account.id, &plan.at_slot, &fresh)?;
            verified_claims = Some(claims);
        }
        let now = self.now();
        self.data.update(|s| {
            let a = s.account_mut(&account.id)?;
            if let Some(c) = &verified_claims {
                a.absorb_claims(c);
            }
            if config.kind == ProviderKind::StackAuth
                && let Ok(at) =
                    crate::jwt::decode_unverified_for_display(fresh.access_token.expose_secret())
            {
                a.current_org = at.claim_str("selected_team_id").map(String::from);
            }
            if plan.at_slot == Slot::Main {
                a.status = AccountStatus::Active;
                a.access_expires_at = fresh.expires_at;
            }
            a.updated_at = now;
            Ok(())
        })?;
        Ok((fresh, true))
    }

    /// The provider refused a refresh token (`invalid_grant`): the account (or only that
    /// organization's sign-in) needs a new sign-in. Nothing is deleted.
    fn grant_lost(&self, account: &Account, slot: &Slot) -> Result<Error> {
        let now = self.now();
        self.data.update(|s| {
            let a = s.account_mut(&account.id)?;
            match slot {
                Slot::Main => a.status = AccountStatus::NeedsSignIn,
                Slot::Org(org) => a.signed_in_orgs.retain(|o| o != org),
            }
            a.updated_at = now;
            Ok(())
        })?;
        Ok(match slot {
            Slot::Main => Error::NeedsSignIn(account.id.clone()),
            Slot::Org(org) => Error::OrgSignInRequired {
                account: account.id.clone(),
                org: org.clone(),
            },
        })
    }

    // ---- inspection ------------------------------------------------------------------

    /// The access or ID token explained and verified. Never contains the token itself.
    pub async fn claims(&self, query: &str, kind: TokenKind) -> Result<ClaimsReport> {
        let account = self.account(query)?;
        let slot = self.default_plan(&account)?.at_slot;
        self.slot_claims(&account, &slot, kind, None).await
    }

    /// The token in `slot` explained and verified; `audience` overrides the access token's
    /// expected audience (an organization token's own).
    pub(crate) async fn slot_claims(
        &self,
        account: &Account,
        slot: &Slot,
        kind: TokenKind,
        audience: Option<&str>,
    ) -> Result<ClaimsReport> {
        let account = account.clone();
        let tokens = self.load_slot(&account, slot)?;
        let (config, metadata, credential) = self.provider_context(&account.provider).await?;
        let now = self.now();
        let (name, token) = match kind {
            TokenKind::IdToken => (
                "id_token",
                tokens
                    .id_token
                    .as_ref()
                    .ok_or_else(|| Error::Unsupported("an ID token for this account".into()))?,
            ),
            TokenKind::AccessToken => ("access_token", &tokens.access_token),
        };
        if !crate::jwt::looks_like_jwt(token.expose_secret()) {
            return self
                .opaque_report(&account, &config, &metadata, credential.as_ref(), token)
                .await;
        }
        let audience = match kind {
            TokenKind::IdToken => Some(config.client_id.as_str()),
            TokenKind::AccessToken => audience.or(config
                .audience
                .as_deref()
                .or(config.resources.first().map(String::as_str))),
        };
        let expect = Expectations {
            kind,
            issuer: &metadata.issuer,
            audience,
            client_id: &config.client_id,
            nonce: tokens.nonce.as_deref(),
            access_token: tokens
                .id_token_matches_access_token
                .then(|| tokens.access_token.expose_secret()),
            now,
        };
        let v = self
            .verify(&metadata, token.expose_secret(), &expect)
            .await?;
        Ok(ClaimsReport {
            account_id: account.id,
            token: name.into(),
            format: "jwt".into(),
            header: explain_header(&v.decoded.header),
            claims: explain_claims(&v.decoded.payload, now),
            verified: v.passed(),
            expires_at: v.decoded.claim_u64("exp"),
            checks: v.checks,
        })
    }

    async fn opaque_report(
        &self,
        account: &Account,
        config: &ProviderConfig,
        metadata: &ProviderMetadata,
        credential: Option<&SecretString>,
        token: &SecretString,
    ) -> Result<ClaimsReport> {
        let now = self.now();
        let endpoint = self.endpoint(config, metadata, credential);
        let (claims, checks, active) = match endpoint.introspect(token, "access_token").await {
            Ok(Value::Object(map)) => {
                let active = map.get("active").and_then(Value::as_bool).unwrap_or(false);
                let check = Check {
                    name: "introspection".into(),
                    status: if active {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    detail: if active {
                        "the provider says the token is active"
                    } else {
                        "the provider says the token is not active"
                    }
                    .into(),
                };
                (map, vec![check], active)
            }
            Ok(_) => {
                return Err(Error::MalformedResponse {
                    url: "introspection".into(),
                    reason: "not an object".into(),
                });
            }
            Err(Error::Unsupported(_)) => (
                Map::new(),
                vec![Check {
                    name: "introspection".into(),
                    status: CheckStatus::Skipped,
                    detail: "opaque token and the provider offers no introspection".into(),
                }],
                false,
            ),
            Err(e) => return Err(e),
        };
        Ok(ClaimsReport {
            account_id: account.id.clone(),
            token: "access_token".into(),
            format: "opaque".into(),
            header: Vec::new(),
            expires_at: claims
                .get("exp")
                .and_then(Value::as_u64)
                .or(account.access_expires_at),
            claims: explain_claims(&claims, now),
            checks,
            verified: active,
        })
    }

    /// The provider's userinfo for the account.
    pub async fn userinfo(&self, query: &str) -> Result<Value> {
        let account = self.account(query)?;
        let token = self.access_token(&account.id, 30, false).await?;
        let (config, metadata, credential) = self.provider_context(&account.provider).await?;
        if config.kind == ProviderKind::StackAuth {
            return self.stack(&config).me(&token.token).await;
        }
        self.endpoint(&config, &metadata, credential.as_ref())
            .userinfo(&token.token)
            .await
    }

    /// RFC 7662 introspection of the account's access token.
    pub async fn introspect(&self, query: &str) -> Result<Value> {
        let account = self.account(query)?;
        let tokens = self.load_slot(&account, &self.default_plan(&account)?.at_slot)?;
        let (config, metadata, credential) = self.provider_context(&account.provider).await?;
        self.endpoint(&config, &metadata, credential.as_ref())
            .introspect(&tokens.access_token, "access_token")
            .await
    }

    // ---- sign-out --------------------------------------------------------------------

    /// Revokes the refresh token (unless `revoke` is false), then removes the keychain entry
    /// and the account. If revocation fails nothing is removed.
    pub async fn sign_out(&self, query: &str, revoke: bool) -> Result<SignOutOutcome> {
        let account = self.account(query)?;
        let slots: Vec<Slot> = std::iter::once(Slot::Main)
            .chain(account.orgs.iter().map(|o| Slot::Org(o.clone())))
            .collect();
        let mut refresh_tokens = Vec::new();
        for slot in &slots {
            if let Some(rt) = self
                .vault
                .load_slot(&account.id, slot)?
                .and_then(|t| t.refresh_token)
            {
                refresh_tokens.push(rt);
            }
        }
        let mut revoked = false;
        let mut logout_url = None;
        let kind = self.provider(&account.provider)?.kind;
        if revoke && kind == ProviderKind::StackAuth {
            revoked = self.stack_sign_out(&account).await?;
        } else if revoke && kind == ProviderKind::StytchB2b {
            revoked = self.stytch_sign_out(&refresh_tokens, &account).await?;
        } else if revoke {
            let (config, metadata, credential) = self.provider_context(&account.provider).await?;
            let endpoint = self.endpoint(&config, &metadata, credential.as_ref());
            for rt in &refresh_tokens {
                match endpoint.revoke(rt).await {
                    Ok(()) => revoked = true,
                    Err(Error::Unsupported(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            logout_url = logout_url_for(&config, &metadata);
        }
        for slot in &slots {
            self.vault.delete_slot(&account.id, slot)?;
        }
        self.data.update(|s: &mut State| {
            s.accounts.retain(|a| a.id != account.id);
            Ok(())
        })?;
        Ok(SignOutOutcome {
            account_id: account.id,
            revoked,
            logout_url,
        })
    }
}

/// Where to end the provider's browser session: Auth0's `/v2/logout`, else the RP-initiated
/// logout endpoint of the discovery document.
fn logout_url_for(config: &ProviderConfig, metadata: &ProviderMetadata) -> Option<String> {
    let base = match config.kind {
        ProviderKind::Auth0 => format!("{}/v2/logout", metadata.issuer.trim_end_matches('/')),
        _ => metadata.end_session_endpoint.clone()?,
    };
    let mut url = url::Url::parse(&base).ok()?;
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id);
    Some(url.to_string())
}

/// The organization a sign-in asks for, where each organization is its own sign-in (Auth0's
/// `organization` parameter, per sign-in or fixed in the provider's configuration).
fn requested_org(config: &ProviderConfig, params: &[(String, String)]) -> Option<String> {
    if config.kind.org_model() != OrgModel::SignInPerOrg {
        return None;
    }
    params
        .iter()
        .rev()
        .find(|(k, _)| k == "organization")
        .map(|(_, v)| v.clone())
        .or_else(|| config.extra_params.get("organization").cloned())
}

/// Auth0: the ID token of an organization sign-in must name the organization asked for
/// (by id `org_…`, or by name when a name was asked for).
fn confirm_org(claims: &DecodedJwt, requested: &str) -> Result<String> {
    let reject = |reason: String| Error::TokenRejected {
        token: "ID token".into(),
        reason,
    };
    let org_id = claims.claim_str("org_id").ok_or_else(|| {
        reject(format!(
            "it carries no org_id although organization \"{requested}\" was requested"
        ))
    })?;
    let named = claims
        .claim_str("org_name")
        .is_some_and(|n| n.eq_ignore_ascii_case(requested));
    if org_id != requested && (requested.starts_with("org_") || !named) {
        return Err(reject(format!(
            "its org_id \"{org_id}\" is not the requested organization \"{requested}\""
        )));
    }
    Ok(org_id.to_string())
}

fn is_fresh(tokens: &TokenSet, min_valid: u64, now: u64) -> bool {
    tokens
        .expires_at
        .is_none_or(|e| e > now.saturating_add(min_valid))
}

fn refresh_secret(tokens: &TokenSet) -> Option<&str> {
    tokens.refresh_token.as_ref().map(|t| t.expose_secret())
}

/// Claims that differ between two token sets: the access tokens' when both are JWTs,
/// otherwise the ID tokens'.
fn changed_claims(before: &TokenSet, after: &TokenSet) -> Vec<ClaimChange> {
    let payload = |t: Option<&SecretString>| {
        t.and_then(|t| crate::jwt::decode_unverified_for_display(t.expose_secret()).ok())
            .map(|d| d.payload)
    };
    let (old, new) = match (
        payload(Some(&before.access_token)),
        payload(Some(&after.access_token)),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => (
            payload(before.id_token.as_ref()).unwrap_or_default(),
            payload(after.id_token.as_ref()).unwrap_or_default(),
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
