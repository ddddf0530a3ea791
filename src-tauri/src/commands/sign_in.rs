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
/// `organizations-discovered` event. Cancellable as `wait_id`.
#[tauri::command]
pub async fn send_email_link(
    state: State<'_, AppState>,
    provider: String,
    email: String,
    wait_id: Option<String>,
) -> IpcResult<EmailLinkSent> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            crate::sign_in::send_email_link(&task, &provider, email.trim()).await
        })
        .await
}

/// Signs in to the organizations the person picked from a discovery. Cancellable as
/// `wait_id` (a sign-in the provider still completes is kept, and announced by
/// `accounts-changed`).
#[tauri::command]
pub async fn choose_organizations(
    state: State<'_, AppState>,
    flow_id: String,
    orgs: Vec<String>,
    wait_id: Option<String>,
) -> IpcResult<AccountView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let account = task.tessera().choose_organizations(&flow_id, &orgs).await;
            task.notify(AppEvent::AccountsChanged);
            Ok(account?.into())
        })
        .await
}

/// Signs in with e-mail and password inside Tessera. The password goes to the
/// provider and is dropped; it is never stored. Cancellable as `wait_id`, like
/// [`choose_organizations`].
#[tauri::command]
pub async fn sign_in_with_password(
    state: State<'_, AppState>,
    provider: String,
    email: String,
    password: String,
    wait_id: Option<String>,
) -> IpcResult<AccountView> {
    let password = SecretString::new(password);
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            let account = task
                .tessera()
                .sign_in_with_password(&provider, email.trim(), &password)
                .await?;
            task.notify(AppEvent::AccountsChanged);
            Ok(account.into())
        })
        .await
}

/// Returns whether a sign-in was still waiting.
#[tauri::command]
pub async fn cancel_sign_in(state: State<'_, AppState>, flow_id: String) -> IpcResult<bool> {
    Ok(crate::sign_in::cancel(&state, &flow_id))
}

/// Signs in with the short code a mailed link shows, typed by the person. Cancellable as
/// `wait_id`, like [`choose_organizations`].
#[tauri::command]
pub async fn sign_in_with_mailed_code(
    state: State<'_, AppState>,
    provider: String,
    code: String,
    wait_id: Option<String>,
) -> IpcResult<AccountView> {
    let task = state.inner().clone();
    state
        .wait_for(wait_id, async move {
            crate::sign_in::type_code(&task, &provider, &code).await
        })
        .await
}

/// Called once the window listens to events; returns the sign-in outcomes and problems that
/// happened before (a cold start opened by a deep link).
#[tauri::command]
pub async fn ui_ready(state: State<'_, AppState>) -> IpcResult<Vec<StartupNotice>> {
    Ok(state.window_ready())
}
