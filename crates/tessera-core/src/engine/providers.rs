//! Registering and removing providers. A provider's credential (client secret, private key or
//! project secret) goes to the keychain, never into the state file. Adding and removing one
//! name hold that name's lock, so two front ends adding the same name cannot both write the
//! keychain (the second sees the first's provider), and a removal never leaves a provider
//! without its credential.

use crate::error::{Error, Result};
use crate::provider::{ProviderConfig, ProviderMetadata};
use crate::providers::{ProviderDraft, ProviderSpec, specs};
use crate::secret::SecretString;

use super::Tessera;

impl Tessera {
    /// What front ends show for each provider kind.
    pub fn provider_specs(&self) -> Vec<ProviderSpec> {
        specs()
    }

    /// Checks where a draft says the provider lives, saving nothing: an OpenID provider's
    /// discovery document, a REST provider's signing keys. Its name and client id need not
    /// be filled in yet.
    pub async fn check_provider(&self, draft: &ProviderDraft) -> Result<ProviderMetadata> {
        let config = draft.location_only().configure()?;
        config.kind.adapter().check(&config, &self.http).await
    }

    /// Registers the provider a draft describes (see [`Tessera::add_provider`]).
    pub async fn add_provider_draft(&self, draft: ProviderDraft) -> Result<ProviderConfig> {
        let config = draft.configure()?;
        let credential = draft.credential.map(|c| c.into_secret());
        self.add_provider(config, credential).await
    }

    /// Registers a provider after checking it over the network (see
    /// [`Tessera::check_provider`]).
    pub async fn add_provider(
        &self,
        mut config: ProviderConfig,
        credential: Option<SecretString>,
    ) -> Result<ProviderConfig> {
        config.validate()?;
        let adapter = config.kind.adapter();
        adapter.check_credential(&config, credential.as_ref())?;
        if self.data.snapshot()?.provider(&config.name).is_ok() {
            return Err(Error::ProviderExists(config.name));
        }
        config.issuer = adapter.check(&config, &self.http).await?.issuer;
        let txn = self.begin_provider(&config.name).await?;
        if self.data.snapshot()?.provider(&config.name).is_ok() {
            return Err(Error::ProviderExists(config.name));
        }
        txn.save_credential_then(self, &config.name, credential.as_ref(), || {
            self.data.update(|s| {
                if s.provider(&config.name).is_ok() {
                    return Err(Error::ProviderExists(config.name.clone()));
                }
                s.providers.push(config.clone());
                Ok(config.clone())
            })
        })
    }

    /// The provider registered under `name`.
    pub fn provider(&self, name: &str) -> Result<ProviderConfig> {
        self.data.snapshot()?.provider(name).cloned()
    }

    pub fn providers(&self) -> Result<Vec<ProviderConfig>> {
        Ok(self.data.read()?.providers)
    }

    /// Removes a provider that has no accounts left: its metadata first (checked for
    /// accounts under the state lock, so a sign-in completing meanwhile either keeps the
    /// provider or fails itself), then its credential.
    pub async fn remove_provider(&self, name: &str) -> Result<()> {
        let txn = self.begin_provider(name).await?;
        let removed = self.data.update(|s| {
            let provider = s.provider(name)?.clone();
            let accounts = s.accounts.iter().filter(|a| a.provider == name).count();
            if accounts > 0 {
                return Err(Error::InvalidConfig(format!(
                    "\"{name}\" still has {accounts} account(s); sign out of them first (tessera logout)"
                )));
            }
            s.providers.retain(|p| p.name != name);
            s.shelved_credentials.retain(|p| p != name);
            Ok(provider)
        })?;
        self.discovery.forget(&removed.issuer);
        txn.delete_credential(self, name).map_err(|e| {
            Error::Keychain(format!(
                "removed \"{name}\", but its secret is still in the keychain ({e}); adding a provider of that name replaces it"
            ))
        })
    }
}
