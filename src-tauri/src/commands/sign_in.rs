//! Sign-in: the browser flow (start, cancel), mailed links (and the organization pick a link
//! may lead to), password and typed codes, and the window's "I am listening" handshake.
//! Which of these a provider offers is in its spec (`ProviderView.spec.signIn`).

use tauri::State;
use tessera_core::{SecretString, SignInRequest};

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{AccountView, AppEvent, EmailLinkSent, SignInStarted, StartupNotice};

/// Opens the provider's sign-in page in the browser; `org` asks for a sign-in into that
/// organization, `oauth_provider` for a sign-in through a social provider (`github`, …),
/// `someone_else` for the provider's login screen.
#[tauri::command]
pub async fn start_sign_in(
    state: State<'_, AppState>,
    provider: String,
    someone_else: bool,
    org: Option<String>,
    oauth_provider: Option<String>,
) -> IpcResult<SignInStarted> {
    let request = SignInRequest {
        provider,
        org,
        oauth_provider,
        someone_else,
        params: Vec::new(),
    };
    crate::sign_in::start(&state, request).await
}

/// Mails a sign-in link to `email`; it comes back as a `sign-in-completed` or
/// `organizations-discovered` event.
#[tauri::command]
pub async fn send_email_link(
    state: State<'_, AppState>,
    provider: String,
    email: String,
) -> IpcResult<EmailLinkSent> {
    crate::sign_in::send_email_link(&state, &provider, email.trim()).await
}

/// Signs in to the organizations the person picked from a discovery.
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

/// Signs in with e-mail and password inside Tessera. The password goes to the
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

/// Signs in with the short code a mailed link shows, typed by the person.
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
