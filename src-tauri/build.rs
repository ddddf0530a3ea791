//! Generates the Tauri context from the root `tauri.conf.json`, and one permission per app
//! command (`allow-<command>`), so the capability in `tauri.conf.json` can grant the web view
//! exactly the app's own commands and nothing by default.

include!("src/commands/list.rs");

/// Every command in `commands::handler()`; a command missing here cannot be granted.
const COMMANDS: &[&str] = app_commands!(command_names);

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/src/commands/list.rs");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed (is tauri.conf.json valid?)");
}
