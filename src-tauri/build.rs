//! Generates the Tauri context from the root `tauri.conf.json`, and one permission per app
//! command (`allow-<command>`), so the capability in `tauri.conf.json` can grant the web view
//! exactly the app's own commands and nothing by default.

/// Every command in `commands::handler()`; a command missing here cannot be granted.
const COMMANDS: &[&str] = &[
    "list_providers",
    "check_provider",
    "add_provider",
    "remove_provider",
    "start_sign_in",
    "cancel_sign_in",
    "send_sign_in_link",
    "choose_organizations",
    "sign_in_with_password",
    "send_sign_in_code",
    "sign_in_with_mailed_code",
    "ui_ready",
    "list_accounts",
    "token_report",
    "refresh_account",
    "copy_access_token",
    "sign_out",
    "list_orgs",
    "org_token_report",
    "switch_org",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed (is tauri.conf.json valid?)");
}
