//! The engine: [`Tessera`], the one entry point front ends use. It ties the data directory,
//! the vault and the provider adapters together, one file per use case (providers, sign-in,
//! e-mail sign-in, refresh, inspection, sign-out, organizations), and keeps the promises that
//! hold whatever the provider:
//!
//! - **verify before store**: a sign-in or refresh stores only tokens whose identity token
//!   (the ID token of an OpenID provider, the access token of Stack Auth and Stytch B2B)
//!   passed every check; a refresh persists a rotated refresh token first, but never hands
//!   out an access or ID token from a response that failed verification;
//! - **keychain first, metadata second**: a failure leaves no half-written account, and a
//!   re-sign-in that cannot write its metadata puts the previous tokens back;
//! - **one transaction per account** ([`txn`]): every write to an account's keychain slots or
//!   record — sign-in, re-sign-in, refresh, organization token, organization switch,
//!   sign-out — holds the account's lock across threads (a mutex) and processes (a file
//!   lock) and re-reads what it changes under it; provider add and remove hold the
//!   provider's lock, and the state file is only changed under its own lock;
//! - `invalid_grant` (or the provider's equivalent) marks the account `needs_sign_in` and
//!   deletes nothing; any other failure changes nothing stored.

mod batch;
mod email;
mod inspect;
mod kept;
mod orgs;
mod providers;
mod refresh;
mod shelf;
mod sign_in;
mod sign_out;
mod txn;
mod types;
mod warm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::account::{Account, DataDir};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::flow::PendingFlows;
use crate::http::{HttpClient, HttpConfig};
use crate::jwt::{Expectations, JwksCache, Verification};
use crate::provider::{ClientAuth, ProviderConfig, ProviderMetadata};
use crate::providers::oidc::discovery::Discovery;
use crate::providers::{Adapter, Context};
use crate::secret::SecretString;
use crate::vault::{SecretStore, Vault};

pub use email::{Discovery as OrgDiscovery, EmailLinkOutcome, EmailSignInStart};
pub use orgs::OrgView;
pub use refresh::Handover;
pub use types::{
    ClaimChange, ClaimsReport, DeviceSignIn, IssuedToken, RefreshOutcome, SignInStart,
    SignOutOutcome,
};

/// What the core is built from; tests swap each part.
pub struct Options {
    pub data_dir: PathBuf,
    pub store: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub http: HttpConfig,
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
    email: email::EmailFlows,
    account_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    warm: warm::WarmTokens,
    kept: kept::Kept,
}

/// A registered provider with everything its adapter needs.
pub(crate) struct Resolved {
    pub config: ProviderConfig,
    pub metadata: ProviderMetadata,
    pub credential: Option<SecretString>,
    pub adapter: &'static dyn Adapter,
}

impl Resolved {
    /// The issuer and audience to verify `token` against: the provider's own (with
    /// `audience`), unless the token names another issuer the adapter accepts, with that
    /// issuer's audience. Any other issuer fails the `iss` check against the provider's own.
    pub fn expected_issuer(&self, token: &str, audience: Option<&str>) -> (String, Option<String>) {
        let named = crate::jwt::decode_unverified_for_display(token)
            .ok()
            .and_then(|t| t.claim_str("iss").map(String::from));
        match self
            .adapter
            .other_issuers(&self.config)
            .into_iter()
            .find(|other| named.as_deref() == Some(other.issuer.as_str()))
        {
            Some(other) => (other.issuer, Some(other.audience)),
            None => (self.metadata.issuer.clone(), audience.map(String::from)),
        }
    }
}

impl Tessera {
    pub fn open(options: Options) -> Result<Self> {
        let data = DataDir::open(&options.data_dir)?;
        let namespace = data.read()?.namespace;
        let tessera = Tessera {
            discovery: Discovery::new(data.cache_dir()),
            flows: PendingFlows::with_journal(data.cache_dir()),
            jwks: JwksCache::on_disk(data.cache_dir()),
            email: Default::default(),
            vault: Vault::new(options.store, &namespace),
            data,
            clock: options.clock,
            http: HttpClient::new(options.http)?,
            account_locks: Mutex::new(HashMap::new()),
            warm: Default::default(),
            kept: Default::default(),
        };
        // Best effort: a locked keychain must not keep the data directory from opening.
        let _ = tessera.recover_interrupted();
        Ok(tessera)
    }

    /// `$XDG_DATA_HOME/dev.tessera` (or the platform's equivalent); an error when there is no
    /// home directory to put it in.
    pub fn default_data_dir() -> Result<PathBuf> {
        dirs::data_dir()
            .map(|d| d.join("dev.tessera"))
            .ok_or_else(|| {
                Error::Storage(
                    "there is no home directory to keep Tessera's data in: set HOME (or XDG_DATA_HOME), or name a directory with TESSERA_DATA_DIR".into(),
                )
            })
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.root()
    }

    /// The keychain account name of an account's own entry (once `refresh --all` moved its
    /// tokens to the shelf, they are there instead; see `shelf`).
    pub fn keychain_key(&self, account_id: &str) -> String {
        self.vault.account_key(account_id)
    }

    /// Unix seconds on the core's clock (the injected one in tests).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub fn accounts(&self) -> Result<Vec<Account>> {
        let accounts = self.data.read()?.accounts;
        if accounts.iter().all(|a| a.pending.is_none()) {
            return Ok(accounts);
        }
        self.recover_interrupted()?;
        Ok(self.data.read()?.accounts)
    }

    /// The account `query` names: its id, or an unambiguous email or subject.
    pub fn account(&self, query: &str) -> Result<Account> {
        self.data.snapshot()?.find_account(query).cloned()
    }

    /// The provider `name` with its endpoints and credential.
    pub(crate) async fn resolve(&self, name: &str) -> Result<Resolved> {
        let config = self.data.snapshot()?.provider(name)?.clone();
        let adapter = config.kind.adapter();
        let metadata = adapter
            .metadata(&config, &self.http, &self.discovery, self.now())
            .await?;
        let credential = match config.client_auth {
            ClientAuth::None => None,
            _ => self.client_credential(&config.name).await?,
        };
        Ok(Resolved {
            config,
            metadata,
            credential,
            adapter,
        })
    }

    pub(crate) fn context<'a>(&'a self, p: &'a Resolved) -> Context<'a> {
        Context {
            config: &p.config,
            metadata: &p.metadata,
            credential: p.credential.as_ref(),
            http: &self.http,
            now: self.now(),
        }
    }

    pub(crate) async fn verify(
        &self,
        metadata: &ProviderMetadata,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Verification> {
        crate::jwt::verify(&self.jwks, &self.http, &metadata.jwks_uri, token, expect).await
    }

    /// An in-memory table whose mutex a panic elsewhere poisoned.
    fn poisoned() -> Error {
        Error::Storage("an internal lock was poisoned by an earlier failure".into())
    }
}
