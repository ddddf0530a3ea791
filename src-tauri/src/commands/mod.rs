//! The commands the web view may call, one file per domain. Each one unpacks its state, calls
//! the core (or a small shell module), and maps the error to [`crate::error::IpcError`].
//! The list of them is declared once, in `list.rs` (see there).

pub mod accounts;
pub mod orgs;
pub mod providers;
pub mod sign_in;
pub mod tokens;
pub mod waits;

use tauri::Runtime;
use tauri::ipc::Invoke;

include!("list.rs");

macro_rules! handler_of {
    ($($module:ident :: $command:ident),* $(,)?) => {
        tauri::generate_handler![$($module::$command),*]
    };
}

/// Every command's name, as the web view invokes it.
pub const NAMES: &[&str] = app_commands!(command_names);

/// The invoke handler with every command.
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    app_commands!(handler_of)
}
