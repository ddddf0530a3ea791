// Every command the web view may call, declared once. `commands::handler()` registers them,
// `build.rs` turns them into one permission each (`allow-<command>`, which the capability in
// `tauri.conf.json` grants), and `ui/src/ipc.ts` must call exactly these (a test checks it).
// Included as text by both, so it holds only the macro.
macro_rules! app_commands {
    ($then:ident) => {
        $then! {
            providers::list_provider_specs,
            providers::list_providers,
            providers::check_provider,
            providers::add_provider,
            providers::remove_provider,
            sign_in::start_sign_in,
            sign_in::cancel_sign_in,
            sign_in::send_email_link,
            sign_in::choose_organizations,
            sign_in::sign_in_with_password,
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
            waits::cancel_wait,
        }
    };
}

macro_rules! command_names {
    ($($module:ident :: $command:ident),* $(,)?) => {
        &[$(stringify!($command)),*]
    };
}
