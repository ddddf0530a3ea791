//! Sign-in: the browser flow (start, cancel), Stytch B2B's mailed link and organization pick,
//! Stack Auth's password, and the window's "I am listening" handshake.

use tauri::State;

use crate::error::IpcResult;
use crate::state::AppState;
use tessera_core::SecretString;
use tessera_core::flow::DEEP_LINK_REDIRECT;

use crate::views::{
    AccountView, AppEvent, EmailLinkSent, MailedCodeSent, SignInStarted, StartupNotice,
};

/// Opens the provider's sign-in page in the browser; `org` asks for a sign-in into that
/// organization (Auth0 `organization`, Logto `organization_id`); `oauth_provider` is Stack
/// Auth's sign-in through GitHub, Google, ….
#[tauri::command]
pub async fn start_sign_in(
    state: State<'_, AppState>,
    provider: String,
    someone_else: bool,
    org: Option<String>,
    oauth_provider: Option<String>,
) -> IpcResult<SignInStarted> {
    crate::sign_in::start(
        &state,
        &provider,
        someone_else,
        org.as_deref(),
        oauth_provider.as_deref(),
    )
    .await
}

/// Stytch B2B: mails a discovery link to `email`; it comes back over `dev.tessera:/callback`
/// as an `organizations-discovered` event.
#[tauri::command]
pub async fn send_sign_in_link(
    state: State<'_, AppState>,
    provider: String,
    email: String,
) -> IpcResult<EmailLinkSent> {
    let sent = state
        .tessera()
        .start_email_sign_in(&provider, email.trim(), DEEP_LINK_REDIRECT)
        .await?;
    Ok(sent.into())
}

/// Stytch B2B: signs in to the organizations the person picked from a discovery.
#[tauri::command]
pub async fn choose_organizations(
    state: State<'_, AppState>,
    flow_id: String,
    orgs: Vec<String>,
) -> IpcResult<AccountView> {
    let account = state.tessera().choose_organizations(&flow_id, &orgs).await;
    state.notify(AppEvent::AccountsChanged);
    Ok(account?.into())
}

/// Stack Auth: signs in with e-mail and password inside Tessera. The password goes to the
/// provider and is dropped; it is never stored.
#[tauri::command]
pub async fn sign_in_with_password(
    state: State<'_, AppState>,
    provider: String,
    email: String,
    password: String,
) -> IpcResult<AccountView> {
    let account = state
        .tessera()
        .sign_in_with_password(&provider, email.trim(), &SecretString::new(password))
        .await?;
    state.notify(AppEvent::AccountsChanged);
    Ok(account.into())
}

/// Returns whether a sign-in was still waiting.
#[tauri::command]
pub async fn cancel_sign_in(state: State<'_, AppState>, flow_id: String) -> IpcResult<bool> {
    Ok(crate::sign_in::cancel(&state, &flow_id))
}

/// Stack Auth: mails a sign-in code; its link comes back to a loopback address (a
/// `sign-in-completed` event tagged with `waitId`), or the person types its six characters.
#[tauri::command]
pub async fn send_sign_in_code(
    state: State<'_, AppState>,
    provider: String,
    email: String,
) -> IpcResult<MailedCodeSent> {
    crate::sign_in::send_code(&state, &provider, email.trim()).await
}

/// Stack Auth: signs in with the six characters from the mailed code.
#[tauri::command]
pub async fn sign_in_with_mailed_code(
    state: State<'_, AppState>,
    provider: String,
    code: String,
) -> IpcResult<AccountView> {
    crate::sign_in::type_code(&state, &provider, &code).await
}

/// Called once the window listens to events; returns the sign-in outcomes and problems that
/// happened before (a cold start opened by a deep link).
#[tauri::command]
pub async fn ui_ready(state: State<'_, AppState>) -> IpcResult<Vec<StartupNotice>> {
    Ok(state.window_ready())
}
