//! Providers: list, check an issuer's discovery document, add, remove.

use tauri::State;
use tessera_core::http::{HttpClient, HttpConfig};
use tessera_core::{PresetInput, ProviderConfig, ProviderKind, SecretString};

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AppEvent, DiscoveryView, NewProvider, ProviderView};

#[tauri::command]
pub async fn list_providers(state: State<'_, AppState>) -> IpcResult<Vec<ProviderView>> {
    let providers = state.tessera().providers()?;
    Ok(providers.into_iter().map(Into::into).collect())
}

/// Checks the provider the form describes without saving anything: an OpenID provider's
/// discovery document, or a REST provider's signing keys.
#[tauri::command]
pub async fn check_provider(provider: NewProvider) -> IpcResult<DiscoveryView> {
    let http = HttpClient::new(HttpConfig::default())?;
    Ok(tessera_core::provider::check(&http, &config(&provider)?)
        .await?
        .into())
}

/// Registers a provider (the core checks discovery again); its secret goes to the keychain.
#[tauri::command]
pub async fn add_provider(
    state: State<'_, AppState>,
    mut provider: NewProvider,
) -> IpcResult<ProviderView> {
    let secret = provider.secret.take().and_then(secret_field);
    let saved = state
        .tessera()
        .add_provider(config(&provider)?, secret)
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

fn trimmed(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// The secret typed into the form, trimmed where it lies (no copy is left unwiped); none
/// when blank.
fn secret_field(mut value: String) -> Option<SecretString> {
    let end = value.trim_end().len();
    value.truncate(end);
    let start = value.len() - value.trim_start().len();
    value.replace_range(..start, "");
    let secret = SecretString::new(value);
    (!secret.expose_secret().is_empty()).then_some(secret)
}

fn words(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The form as a provider config, shaped by its kind's preset (issuer from the Auth0 domain
/// or the Logto endpoint, default scopes and resources, the REST providers' project).
fn config(p: &NewProvider) -> Result<ProviderConfig, tessera_core::Error> {
    let kind: ProviderKind = p.kind.into();
    let project_id = trimmed(p.project_id.as_deref());
    let client_id = match (trimmed(Some(&p.client_id)), &project_id) {
        (Some(id), _) => id,
        (None, Some(project)) if !kind.is_oidc() => project.clone(),
        _ => String::new(),
    };
    let input = PresetInput {
        domain: trimmed(p.domain.as_deref()),
        endpoint: trimmed(p.endpoint.as_deref()),
        issuer: trimmed(Some(&p.issuer)),
        project_id,
        client_key: trimmed(p.client_key.as_deref()),
        base_url: trimmed(p.base_url.as_deref()),
    };
    let mut config = ProviderConfig::preset(kind, p.name.trim(), &client_id, &input)?;
    config.client_auth = p.client_auth.into();
    config.key_id = trimmed(p.key_id.as_deref());
    let scopes = words(&p.scopes);
    if !scopes.is_empty() {
        config.scopes = scopes;
    }
    if let Some(audience) = trimmed(p.audience.as_deref()) {
        config.audience = Some(audience);
    }
    for resource in words(&p.resources) {
        if !config.resources.contains(&resource) {
            config.resources.push(resource);
        }
    }
    config.redirect_mode = p.redirect_mode.into();
    Ok(config)
}
