//! Tokens: the explained and verified view of a token, and copying the access token to the
//! clipboard. The token itself never crosses into the web view.

use tauri::State;

use crate::error::{IpcError, IpcResult};
use crate::state::AppState;
use crate::views::{AppEvent, CopiedToken, TokenKindView, TokenReport};

/// The token explained and verified (which may fetch the provider's keys, or ask its
/// introspection or userinfo endpoint). Cancellable as `wait_id`.
#[tauri::command]
pub async fn token_report(
    state: State<'_, AppState>,
    account_id: String,
    kind: TokenKindView,
    wait_id: Option<String>,
) -> IpcResult<TokenReport> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            Ok(task
                .tessera()
                .claims(&account_id, kind.into())
                .await?
                .into())
        })
        .await
}

/// Puts a valid access token (refreshed if it has less than 30 s left) on the clipboard and
/// clears the clipboard after a minute, or when the app exits first, if it still holds that
/// token.
#[tauri::command]
pub async fn copy_access_token(
    state: State<'_, AppState>,
    account_id: String,
) -> IpcResult<CopiedToken> {
    let issued = state.tessera().access_token(&account_id, 30, false).await?;
    state
        .desktop()
        .write_clipboard(issued.token.expose_secret())
        .map_err(|e| IpcError::new("clipboard", format!("could not write the clipboard: {e}")))?;
    if issued.refreshed {
        state.notify(AppEvent::AccountsChanged);
    }
    let delay = state.clipboard_clear_after();
    let copied = CopiedToken {
        expires_at: issued.expires_at,
        refreshed: issued.refreshed,
        clears_after_secs: delay.as_secs(),
    };
    let serial = state.remember_copied_token(issued.token);
    let later = state.inner().clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(delay).await;
        later.clear_copied_token(Some(serial));
    });
    Ok(copied)
}
