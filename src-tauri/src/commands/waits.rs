//! Waits: the Cancel of any command that waits for a provider (see [`AppState::wait_for`]).

use tauri::State;

use crate::error::IpcResult;
use crate::state::AppState;

/// Stops waiting for the command started with `wait_id`; false if it had already finished.
#[tauri::command]
pub async fn cancel_wait(state: State<'_, AppState>, wait_id: String) -> IpcResult<bool> {
    Ok(state.cancel_wait(&wait_id))
}
