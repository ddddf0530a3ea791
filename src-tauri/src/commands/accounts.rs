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

/// Refreshes whatever the expiry and says what changed. Cancellable as `wait_id`.
#[tauri::command]
pub async fn refresh_account(
    state: State<'_, AppState>,
    account_id: String,
    wait_id: Option<String>,
) -> IpcResult<RefreshView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let outcome = task.tessera().refresh(&account_id).await;
            // Even a failure may have changed the account (invalid_grant marks it needs_sign_in).
            task.notify(AppEvent::AccountsChanged);
            Ok(outcome?.into())
        })
        .await
}

/// Revokes at the provider (when `revoke`) and opens its logout page, then forgets the
/// account and its keychain entry. If revocation fails nothing is removed. Cancellable as
/// `wait_id` (the sign-out then still completes or fails on its own).
#[tauri::command]
pub async fn sign_out(
    state: State<'_, AppState>,
    account_id: String,
    revoke: bool,
    wait_id: Option<String>,
) -> IpcResult<SignOutView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let outcome = task.tessera().sign_out(&account_id, revoke).await?;
            let opened = match &outcome.logout_url {
                Some(url) if revoke => task.desktop().open_url(url).is_ok(),
                _ => false,
            };
            task.notify(AppEvent::AccountsChanged);
            Ok(SignOutView::new(outcome, opened))
        })
        .await
}
