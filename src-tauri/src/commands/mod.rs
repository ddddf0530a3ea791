//! The commands the web view may call, one file per domain. Each one unpacks its state, calls
//! the core (or a small shell module), and maps the error to [`crate::error::IpcError`].
//! `src-tauri/build.rs` lists the same names so the capability can grant exactly these.

pub mod accounts;
pub mod orgs;
pub mod providers;
pub mod sign_in;
pub mod tokens;

use tauri::Runtime;
use tauri::ipc::Invoke;

/// The invoke handler with every command.
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        providers::list_providers,
        providers::check_provider,
        providers::add_provider,
        providers::remove_provider,
        sign_in::start_sign_in,
        sign_in::cancel_sign_in,
        sign_in::send_sign_in_link,
        sign_in::choose_organizations,
        sign_in::sign_in_with_password,
        sign_in::send_sign_in_code,
        sign_in::sign_in_with_mailed_code,
        sign_in::ui_ready,
        accounts::list_accounts,
        accounts::refresh_account,
        accounts::sign_out,
        tokens::token_report,
        tokens::copy_access_token,
        orgs::list_orgs,
        orgs::org_token_report,
        orgs::switch_org,
    ]
}
