//! The operating-system side effects of the shell — opening the system browser, the clipboard,
//! events to the web view, focusing the window — behind one trait, so the command layer can be
//! tested without a window ([`crate::testing`] has a recording fake).
//!
//! The clipboard is only ever written from Rust: the web view has no clipboard permission.
//! What Tessera puts there is a token, so it is written marked for clipboard managers to leave
//! out of their history (`x-kde-passwordManagerHint` on Linux, the concealed type on macOS,
//! excluded from history, cloud and monitoring on Windows).

use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;
use tauri_plugin_opener::OpenerExt;
use tessera_core::SecretString;

use crate::views::AppEvent;

/// What the shell asks of the desktop.
pub trait Desktop: Send + Sync + 'static {
    /// Opens `url` in the system browser.
    fn open_url(&self, url: &str) -> Result<(), String>;
    /// Puts a secret on the clipboard, marked as one for clipboard managers.
    fn write_clipboard(&self, text: &str) -> Result<(), String>;
    /// Whether the clipboard holds exactly `text`.
    fn clipboard_holds(&self, text: &str) -> bool;
    fn clear_clipboard(&self);
    /// Sends an event to the web view.
    fn emit(&self, event: &AppEvent);
    /// Brings the main window to the front (a sign-in came back).
    fn focus(&self);
}

/// The real desktop, through Tauri and its plugins.
pub struct TauriDesktop<R: Runtime> {
    app: AppHandle<R>,
}

impl<R: Runtime> TauriDesktop<R> {
    pub fn new(app: AppHandle<R>) -> Self {
        TauriDesktop { app }
    }
}

impl<R: Runtime> Desktop for TauriDesktop<R> {
    fn open_url(&self, url: &str) -> Result<(), String> {
        self.app
            .opener()
            .open_url(url, None::<&str>)
            .map_err(|e| e.to_string())
    }

    fn write_clipboard(&self, text: &str) -> Result<(), String> {
        self.app
            .clipboard()
            .write_secret(text)
            .map_err(|e| e.to_string())
    }

    fn clipboard_holds(&self, text: &str) -> bool {
        self.app
            .clipboard()
            .read_text()
            .is_ok_and(|held| SecretString::new(held).expose_secret() == text)
    }

    fn clear_clipboard(&self) {
        if let Err(e) = self.app.clipboard().clear() {
            eprintln!("tessera: could not clear the clipboard: {e}");
        }
    }

    fn emit(&self, event: &AppEvent) {
        let sent = match event {
            AppEvent::SignInCompleted(p) => self.app.emit(AppEvent::SIGN_IN_COMPLETED, p),
            AppEvent::SignInFailed(p) => self.app.emit(AppEvent::SIGN_IN_FAILED, p),
            AppEvent::OrganizationsDiscovered(p) => {
                self.app.emit(AppEvent::ORGANIZATIONS_DISCOVERED, p)
            }
            AppEvent::AccountsChanged => self.app.emit(AppEvent::ACCOUNTS_CHANGED, ()),
            AppEvent::AppError(p) => self.app.emit(AppEvent::APP_ERROR, p),
        };
        if let Err(e) = sent {
            eprintln!("tessera: could not notify the window: {e}");
        }
    }

    fn focus(&self) {
        if let Some(window) = self.app.get_webview_window("main") {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
        }
    }
}
