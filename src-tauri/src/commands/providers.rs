//! Providers: list, check an issuer's discovery document, add, remove.

use tauri::State;
use tessera_core::http::{HttpClient, HttpConfig};
use tessera_core::{ProviderConfig, SecretString};

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AppEvent, DiscoveryView, NewProvider, ProviderView};

#[tauri::command]
pub async fn list_providers(state: State<'_, AppState>) -> IpcResult<Vec<ProviderView>> {
    let providers = state.tessera().providers()?;
    Ok(providers.into_iter().map(Into::into).collect())
}

/// Fetches and checks `issuer`'s discovery document without saving anything.
#[tauri::command]
pub async fn check_discovery(issuer: String) -> IpcResult<DiscoveryView> {
    let http = HttpClient::new(HttpConfig::default())?;
    Ok(tessera_core::provider::fetch(&http, issuer.trim())
        .await?
        .into())
}

/// Registers a provider (the core checks discovery again); its secret goes to the keychain.
#[tauri::command]
pub async fn add_provider(
    state: State<'_, AppState>,
    provider: NewProvider,
) -> IpcResult<ProviderView> {
    let secret = provider
        .secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(SecretString::new);
    let saved = state
        .tessera()
        .add_provider(config(&provider), secret)
        .await?;
    state.notify(AppEvent::AccountsChanged);
    Ok(saved.into())
}

#[tauri::command]
pub async fn remove_provider(state: State<'_, AppState>, name: String) -> IpcResult<()> {
    state.tessera().remove_provider(&name)?;
    state.notify(AppEvent::AccountsChanged);
    Ok(())
}

fn config(p: &NewProvider) -> ProviderConfig {
    let mut config = ProviderConfig::new(p.name.trim(), p.issuer.trim(), p.client_id.trim());
    config.client_auth = p.client_auth.into();
    let scopes: Vec<String> = p
        .scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !scopes.is_empty() {
        config.scopes = scopes;
    }
    config.audience = p
        .audience
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from);
    config.resources = p
        .resources
        .iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    config.redirect_mode = p.redirect_mode.into();
    config
}
