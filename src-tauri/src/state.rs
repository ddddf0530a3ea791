//! The shell's state: the core, the desktop, and three small pieces of bookkeeping — waits
//! the person can cancel (loopback sign-ins running in the background, and commands waiting
//! for a provider, see [`AppState::wait_for`]), events that happened
//! before the window was listening (a cold start opened by a deep link), and the token last
//! copied to the clipboard (cleared after [`CLIPBOARD_CLEAR_AFTER`] or when the app exits,
//! whichever comes first, if the clipboard still holds it).
//!
//! Everything is internally synchronized and cheap to clone, so background tasks own a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tessera_core::{SecretString, Tessera};
use tokio::sync::oneshot;

use crate::desktop::Desktop;
use crate::error::{IpcError, IpcResult};
use crate::views::{AppEvent, StartupNotice};

/// How long a copied token stays on the clipboard.
pub const CLIPBOARD_CLEAR_AFTER: Duration = Duration::from_secs(60);

/// Managed by Tauri; commands take `State<'_, AppState>`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    tessera: Arc<Tessera>,
    desktop: Arc<dyn Desktop>,
    clipboard_clear_after: Duration,
    /// Cancel handles of waits (loopback sign-ins by flow id, commands by the UI's wait id).
    waits: Mutex<HashMap<String, oneshot::Sender<()>>>,
    window: Mutex<Window>,
    copied: Mutex<Option<Copied>>,
}

/// The token last put on the clipboard, numbered so a late timer knows it was replaced.
struct Copied {
    serial: u64,
    token: SecretString,
}

/// Whether the web view listens yet, and what it missed.
#[derive(Default)]
struct Window {
    ready: bool,
    missed: Vec<StartupNotice>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    pub fn new(tessera: Arc<Tessera>, desktop: Arc<dyn Desktop>) -> Self {
        Self::with_clipboard_delay(tessera, desktop, CLIPBOARD_CLEAR_AFTER)
    }

    /// As [`AppState::new`] with another clipboard delay (tests).
    pub fn with_clipboard_delay(
        tessera: Arc<Tessera>,
        desktop: Arc<dyn Desktop>,
        clipboard_clear_after: Duration,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                tessera,
                desktop,
                clipboard_clear_after,
                waits: Mutex::new(HashMap::new()),
                window: Mutex::new(Window::default()),
                copied: Mutex::new(None),
            }),
        }
    }

    pub fn tessera(&self) -> &Arc<Tessera> {
        &self.inner.tessera
    }

    pub fn desktop(&self) -> &Arc<dyn Desktop> {
        &self.inner.desktop
    }

    pub fn clipboard_clear_after(&self) -> Duration {
        self.inner.clipboard_clear_after
    }

    /// Remembers `token` as the one just put on the clipboard; the number it returns names it
    /// to [`AppState::clear_copied_token`].
    pub fn remember_copied_token(&self, token: SecretString) -> u64 {
        let mut copied = lock(&self.inner.copied);
        let serial = copied.as_ref().map_or(0, |c| c.serial + 1);
        *copied = Some(Copied { serial, token });
        serial
    }

    /// Clears the clipboard if it still holds the copied token, and forgets the token. With
    /// `Some(serial)`, only if that token is the one last copied (a later copy has its own
    /// timer); with `None` whichever it is (the app is exiting).
    pub fn clear_copied_token(&self, serial: Option<u64>) {
        let copied = {
            let mut copied = lock(&self.inner.copied);
            if serial.is_some_and(|s| copied.as_ref().is_none_or(|c| c.serial != s)) {
                return;
            }
            copied.take()
        };
        if let Some(c) = copied
            && self.inner.desktop.clipboard_holds(c.token.expose_secret())
        {
            self.inner.desktop.clear_clipboard();
        }
    }

    /// Tells the window, or keeps the event for `ui_ready` if it is not listening yet.
    pub fn notify(&self, event: AppEvent) {
        {
            let mut window = lock(&self.inner.window);
            if !window.ready {
                window.missed.extend(event.as_notice());
                return;
            }
        }
        self.inner.desktop.emit(&event);
    }

    /// The window listens from now on; returns what it missed.
    pub fn window_ready(&self) -> Vec<StartupNotice> {
        let mut window = lock(&self.inner.window);
        window.ready = true;
        std::mem::take(&mut window.missed)
    }

    pub fn track_wait(&self, id: &str, cancel: oneshot::Sender<()>) {
        lock(&self.inner.waits).insert(id.to_string(), cancel);
    }

    /// Stops a wait (a loopback sign-in, a command waiting for a provider); false if none
    /// runs under `id`.
    pub fn cancel_wait(&self, id: &str) -> bool {
        match lock(&self.inner.waits).remove(id) {
            Some(cancel) => cancel.send(()).is_ok(),
            None => false,
        }
    }

    pub fn forget_wait(&self, id: &str) {
        lock(&self.inner.waits).remove(id);
    }

    /// Runs `work` (a call that waits for a provider) in the background and waits for it,
    /// unless the person cancels the wait `wait_id` first: then the command answers
    /// `cancelled` at once while `work` still runs to its end under the core's own time
    /// bounds, so nothing it already got (a rotated refresh token) is lost, and the window is
    /// told when the accounts changed.
    pub async fn wait_for<T, F>(&self, wait_id: Option<String>, work: F) -> IpcResult<T>
    where
        T: Send + 'static,
        F: Future<Output = IpcResult<T>> + Send + 'static,
    {
        let joined = |r: Result<IpcResult<T>, tauri::Error>| {
            r.unwrap_or_else(|e| Err(IpcError::new("internal", format!("the task failed: {e}"))))
        };
        let Some(id) = wait_id else {
            return joined(tauri::async_runtime::spawn(work).await);
        };
        // Cancellable before the work can reach the provider.
        let (cancel, cancelled) = oneshot::channel();
        self.track_wait(&id, cancel);
        let task = tauri::async_runtime::spawn(work);
        let outcome = tokio::select! {
            done = task => joined(done),
            Ok(()) = cancelled => Err(IpcError::new(
                "cancelled",
                "Stopped waiting for the provider. If it still answers, what it sends is kept.",
            )),
        };
        self.forget_wait(&id);
        outcome
    }
}
