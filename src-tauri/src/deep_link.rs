//! Deep links: `dev.tessera:/callback?...` URLs that bring a sign-in back from the browser.
//!
//! - Running app: the OS starts a second `tessera-desktop URL`; the single-instance plugin
//!   (registered first, with its `deep-link` feature) forwards the URL over D-Bus / a named
//!   pipe to this process, where `on_open_url` fires and the second process exits.
//! - Cold start (the app was not running): the URL is in our own arguments; `on_open_url`
//!   does not fire for it, so [`install`] reads `get_current()` once.
//! - Linux (and Windows debug builds) need the scheme registered at run time
//!   (`register_all()` writes a `.desktop` handler and calls `xdg-mime`), which [`install`]
//!   does on a thread of its own so start-up does not wait for it.
//!
//! Every URL goes to the core, which accepts it only for a pending flow with the same `state`
//! (single use; unknown, replayed and expired states are refused with their own codes).

use tauri::{App, Runtime};
use tauri_plugin_deep_link::DeepLinkExt;

use crate::state::AppState;

/// The scheme of our redirect URI (`tessera_core::flow::DEEP_LINK_REDIRECT`).
pub const SCHEME: &str = "dev.tessera";

pub fn install<R: Runtime>(app: &App<R>, state: &AppState) {
    // In the background: on Linux this runs `update-desktop-database` and `xdg-mime`, which
    // would hold up the window's first page by tens of milliseconds.
    #[cfg(any(target_os = "linux", all(debug_assertions, windows)))]
    {
        let app = app.handle().clone();
        std::thread::spawn(move || {
            if let Err(e) = app.deep_link().register_all() {
                eprintln!("tessera: {}", register_failure(&e.to_string()));
            }
        });
    }

    let running = state.clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            dispatch(&running, url.as_str());
        }
    });

    match app.deep_link().get_current() {
        Ok(Some(urls)) => {
            for url in urls {
                dispatch(state, url.as_str());
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("tessera: could not read the link Tessera was opened with: {e}"),
    }
}

fn dispatch(state: &AppState, url: &str) {
    if !url.starts_with(&format!("{SCHEME}:")) {
        eprintln!("tessera: ignoring a link that is not {SCHEME}:");
        return;
    }
    let (state, url) = (state.clone(), url.to_string());
    tauri::async_runtime::spawn(async move { crate::sign_in::complete(&state, &url).await });
}

/// A readable reason why the scheme could not be registered.
#[cfg(any(target_os = "linux", all(debug_assertions, windows)))]
fn register_failure(error: &str) -> String {
    let xdg_mime_missing = cfg!(target_os = "linux")
        && !std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("xdg-mime").is_file()))
            .unwrap_or(false);
    if xdg_mime_missing {
        format!(
            "cannot register the {SCHEME}: link handler because xdg-utils is not installed \
             (xdg-mime is missing; on Debian/Ubuntu: sudo apt install xdg-utils). Sign-ins that \
             return through the browser will not reach Tessera until it is. ({error})"
        )
    } else {
        format!("cannot register the {SCHEME}: link handler: {error}")
    }
}
