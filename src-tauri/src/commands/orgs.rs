//! Organizations: list an account's, look at one's token, make one current.

use tauri::State;

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AccountView, AppEvent, OrgDetail, TokenKindView, TokenReport};

/// The organizations (teams) the account's person can use; Stack Auth's are fetched afresh.
/// Cancellable as `wait_id`.
#[tauri::command]
pub async fn list_orgs(
    state: State<'_, AppState>,
    account_id: String,
    wait_id: Option<String>,
) -> IpcResult<Vec<OrgDetail>> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let orgs = task.tessera().organizations(&account_id).await?;
            Ok(orgs.into_iter().map(Into::into).collect())
        })
        .await
}

/// The token of one organization explained and verified, obtained the provider's way first
/// when there is none yet (Logto organization token, Stytch organization session, Stack Auth
/// team switch). An Auth0 organization without its own sign-in answers
/// `org_sign_in_required`. Cancellable as `wait_id`.
#[tauri::command]
pub async fn org_token_report(
    state: State<'_, AppState>,
    account_id: String,
    org: String,
    kind: TokenKindView,
    wait_id: Option<String>,
) -> IpcResult<TokenReport> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let report = task
                .tessera()
                .org_claims(&account_id, &org, kind.into())
                .await;
            // Obtaining the token may have rotated the refresh token or switched the team.
            task.notify(AppEvent::AccountsChanged);
            Ok(report?.into())
        })
        .await
}

/// Makes `org` the one used when none is named (Stack Auth selects the team at the provider;
/// Auth0 and Stytch B2B use that organization's own sign-in or session). Cancellable as
/// `wait_id`.
#[tauri::command]
pub async fn switch_org(
    state: State<'_, AppState>,
    account_id: String,
    org: String,
    wait_id: Option<String>,
) -> IpcResult<AccountView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let account = task.tessera().switch_org(&account_id, &org).await;
            task.notify(AppEvent::AccountsChanged);
            Ok(account?.into())
        })
        .await
}
