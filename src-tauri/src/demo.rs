//! The demo default: when `TESSERA_DEMO_ISSUER` is set (`scripts/run` sets it to the bundled
//! local provider, `http://127.0.0.1:8797`), make sure a provider named "Local demo" exists,
//! so a newcomer can sign in without an account anywhere.

use tessera_core::{Error, ProviderConfig, RedirectMode};

use crate::error::IpcError;
use crate::state::AppState;
use crate::views::AppEvent;

pub const DEMO_PROVIDER: &str = "Local demo";
/// The public client the bundled provider (`tests/idp`) registers for Tessera.
pub const DEMO_CLIENT_ID: &str = "tessera-public";

pub async fn ensure(state: &AppState, issuer: &str) {
    match state.tessera().provider(DEMO_PROVIDER) {
        Ok(existing) => {
            if existing.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                eprintln!(
                    "tessera: \"{DEMO_PROVIDER}\" points at {} rather than {issuer}; leaving it as is",
                    existing.issuer
                );
            }
            return;
        }
        Err(Error::UnknownProvider(_)) => {}
        Err(e) => return problem(state, e),
    }
    let mut config = ProviderConfig::new(DEMO_PROVIDER, issuer, DEMO_CLIENT_ID);
    config.redirect_mode = RedirectMode::DeepLink;
    match state.tessera().add_provider(config, None).await {
        Ok(_) => state.notify(AppEvent::AccountsChanged),
        Err(Error::ProviderExists(_)) => {}
        Err(e) => problem(state, e),
    }
}

fn problem(state: &AppState, e: Error) {
    eprintln!("tessera: could not set up the {DEMO_PROVIDER} provider: {e}");
    state.notify(AppEvent::AppError(IpcError::new(
        e.code(),
        format!("Could not set up the \"{DEMO_PROVIDER}\" provider: {e}"),
    )));
}
