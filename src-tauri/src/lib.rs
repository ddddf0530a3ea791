//! Tessera's desktop shell: a Tauri window over `tessera-core`. No protocol logic lives here —
//! the shell opens the core, wires deep links and the system browser to it, and exposes thin
//! commands ([`commands`]) that hand view models ([`views`]) to the web UI in `ui/`.
//!
//! Security posture: tokens, the PKCE verifier, `state` and nonce stay in Rust; the web view
//! gets view models and may call only the commands in [`commands::handler`] and listen to
//! events (capability in `tauri.conf.json`); the clipboard and the browser are driven from
//! Rust.

pub mod commands;
mod deep_link;
pub mod demo;
pub mod desktop;
pub mod error;
pub mod sign_in;
pub mod state;
pub mod views;

use std::sync::Arc;

use tauri::{AppHandle, Manager, RunEvent, Runtime};
use tessera_core::clock::SystemClock;
use tessera_core::http::HttpConfig;
use tessera_core::vault::KeyringStore;
use tessera_core::{Options, Tessera};

use crate::desktop::TauriDesktop;
use crate::state::AppState;

/// Opens the core on the real keychain and `TESSERA_DATA_DIR` (default: the data directory
/// shared with the `tessera` command line).
pub fn open_tessera() -> tessera_core::Result<Tessera> {
    let data_dir = std::env::var_os("TESSERA_DATA_DIR")
        .map_or_else(Tessera::default_data_dir, |d| Ok(d.into()))?;
    Tessera::open(Options {
        data_dir,
        store: Arc::new(KeyringStore::new()),
        clock: Arc::new(SystemClock),
        http: HttpConfig::default(),
    })
}

/// Runs the desktop app.
pub fn run() {
    tauri::Builder::default()
        // First: a second launch (the OS handing us a dev.tessera: link) must be forwarded to
        // this window, never start a second app.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(state) = app.try_state::<AppState>() {
                state.desktop().focus();
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .invoke_handler(commands::handler())
        .setup(|app| {
            let tessera = open_tessera().map_err(|e| {
                format!("Tessera cannot open its data directory: {e} [{}]", e.code())
            })?;
            let desktop = Arc::new(TauriDesktop::new(app.handle().clone()));
            let state = AppState::new(Arc::new(tessera), desktop);
            app.manage(state.clone());
            deep_link::install(app, &state);
            if let Some(issuer) = std::env::var("TESSERA_DEMO_ISSUER")
                .ok()
                .filter(|i| !i.is_empty())
            {
                tauri::async_runtime::spawn(async move { demo::ensure(&state, &issuer).await });
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("error while running Tessera")
        .run(on_run_event);
}

/// The app's part in the event loop: before it exits (the clipboard plugin lets go of the
/// clipboard on `Exit`, handing its contents to any clipboard manager), a copied token still
/// on the clipboard is cleared.
pub fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::ExitRequested { .. } = event
        && let Some(state) = app.try_state::<AppState>()
    {
        state.clear_copied_token(None);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The commands `list.rs` declares are exactly those `ui/src/ipc.ts` calls and those the
    /// capability in `tauri.conf.json` grants.
    #[test]
    fn commands_are_declared_once() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let declared: BTreeSet<String> = crate::commands::NAMES
            .iter()
            .map(|n| n.to_string())
            .collect();
        let ipc = std::fs::read_to_string(root.join("ui/src/ipc.ts")).expect("ui/src/ipc.ts");
        let called: BTreeSet<String> = ["call<", "callWaiting<"]
            .iter()
            .flat_map(|call| ipc.split(call).skip(1))
            .filter_map(|rest| {
                rest.split_once(">('")?
                    .1
                    .split_once('\'')
                    .map(|(n, _)| n.into())
            })
            .collect();
        assert_eq!(
            called, declared,
            "ui/src/ipc.ts and commands/list.rs differ"
        );
        let conf: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("tauri.conf.json")).expect("tauri.conf.json"),
        )
        .expect("tauri.conf.json is JSON");
        let granted: BTreeSet<String> = conf["app"]["security"]["capabilities"][0]["permissions"]
            .as_array()
            .expect("the capability's permissions")
            .iter()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        assert_eq!(granted, declared, "tauri.conf.json grants other commands");
    }

    /// Regenerates `ui/src/bindings/`; `scripts/test` then fails if git sees a difference.
    #[test]
    fn bindings_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/bindings");
        crate::views::export_bindings(&dir).expect("exporting TypeScript bindings");
    }
}
