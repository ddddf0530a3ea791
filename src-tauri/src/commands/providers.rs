//! Providers: the kinds' specs, list, check where a provider lives, add, remove.

use tauri::State;
use tessera_core::ProviderSpec;

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AppEvent, DiscoveryView, NewProvider, ProviderView};

#[tauri::command]
pub async fn list_providers(state: State<'_, AppState>) -> IpcResult<Vec<ProviderView>> {
    let providers = state.tessera().providers()?;
    Ok(providers.into_iter().map(Into::into).collect())
}

/// What the Add provider form draws for each provider kind.
#[tauri::command]
pub async fn list_provider_specs(state: State<'_, AppState>) -> IpcResult<Vec<ProviderSpec>> {
    Ok(state.tessera().provider_specs())
}

/// Checks where the form says the provider lives without saving anything: an OpenID
/// provider's discovery document, or a REST provider's signing keys. Cancellable as `wait_id`.
#[tauri::command]
pub async fn check_provider(
    state: State<'_, AppState>,
    provider: NewProvider,
    wait_id: Option<String>,
) -> IpcResult<DiscoveryView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let draft = provider.into_draft();
            Ok(task.tessera().check_provider(&draft).await?.into())
        })
        .await
}

/// Registers a provider (the core checks it again); its secret goes to the keychain.
/// Cancellable as `wait_id`: a provider that answers after the cancel is still added.
#[tauri::command]
pub async fn add_provider(
    state: State<'_, AppState>,
    provider: NewProvider,
    wait_id: Option<String>,
) -> IpcResult<ProviderView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let saved = task
                .tessera()
                .add_provider_draft(provider.into_draft())
                .await?;
            task.notify(AppEvent::AccountsChanged);
            Ok(saved.into())
        })
        .await
}

#[tauri::command]
pub async fn remove_provider(state: State<'_, AppState>, name: String) -> IpcResult<()> {
    state.tessera().remove_provider(&name).await?;
    state.notify(AppEvent::AccountsChanged);
    Ok(())
}
