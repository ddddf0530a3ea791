//! Sign-in: start (opens the browser), cancel, and the window's "I am listening" handshake.

use tauri::State;

use crate::error::IpcResult;
use crate::state::AppState;
use crate::views::{SignInStarted, StartupNotice};

#[tauri::command]
pub async fn start_sign_in(
    state: State<'_, AppState>,
    provider: String,
    someone_else: bool,
) -> IpcResult<SignInStarted> {
    crate::sign_in::start(&state, &provider, someone_else).await
}

/// Returns whether a sign-in was still waiting.
#[tauri::command]
pub async fn cancel_sign_in(state: State<'_, AppState>, flow_id: String) -> IpcResult<bool> {
    Ok(crate::sign_in::cancel(&state, &flow_id))
}

/// Called once the window listens to events; returns the sign-in outcomes and problems that
/// happened before (a cold start opened by a deep link).
#[tauri::command]
pub async fn ui_ready(state: State<'_, AppState>) -> IpcResult<Vec<StartupNotice>> {
    Ok(state.window_ready())
}
