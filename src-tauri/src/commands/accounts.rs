//! Accounts: list, refresh now, sign out.

use tauri::State;

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AccountView, AppEvent, RefreshView, SignOutView};

#[tauri::command]
pub async fn list_accounts(state: State<'_, AppState>) -> IpcResult<Vec<AccountView>> {
    let accounts = state.tessera().accounts()?;
    Ok(accounts.into_iter().map(Into::into).collect())
}

/// Refreshes whatever the expiry and says what changed.
#[tauri::command]
pub async fn refresh_account(
    state: State<'_, AppState>,
    account_id: String,
) -> IpcResult<RefreshView> {
    let outcome = state.tessera().refresh(&account_id).await;
    // Even a failure may have changed the account (invalid_grant marks it needs_sign_in).
    state.notify(AppEvent::AccountsChanged);
    Ok(outcome?.into())
}

/// Revokes at the provider (when `revoke`) and opens its logout page, then forgets the
/// account and its keychain entry. If revocation fails nothing is removed.
#[tauri::command]
pub async fn sign_out(
    state: State<'_, AppState>,
    account_id: String,
    revoke: bool,
) -> IpcResult<SignOutView> {
    let outcome = state.tessera().sign_out(&account_id, revoke).await?;
    let opened = match &outcome.logout_url {
        Some(url) if revoke => state.desktop().open_url(url).is_ok(),
        _ => false,
    };
    state.notify(AppEvent::AccountsChanged);
    Ok(SignOutView::new(outcome, opened))
}
