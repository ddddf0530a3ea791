//! The agent's eye on its data directory (Linux, inotify): whenever another process (the app,
//! a `tessera` run without the agent) has changed an account, `tessera.json` is replaced by a
//! rename (the one event watched), and the agent reads the tokens it keeps warm again at once,
//! so the next `tessera token` is answered without a keychain round trip. Best effort: without inotify, a request after such
//! a change reads the keychain itself, as it always could.

use std::sync::Arc;

use inotify::{Inotify, WatchMask};
use tokio::task::JoinHandle;

use crate::engine::Tessera;

/// Starts watching; `None` when inotify cannot be used (the agent works as before).
pub fn start(tessera: Arc<Tessera>) -> Option<JoinHandle<()>> {
    let inotify = Inotify::init().ok()?;
    inotify
        .watches()
        .add(tessera.data_dir(), WatchMask::MOVED_TO)
        .ok()?;
    let mut events = inotify.into_event_stream([0u8; 4096]).ok()?;
    Some(tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(event)) = events.next().await {
            if event.name.is_some_and(|n| n == crate::account::STATE_FILE) {
                let tessera = tessera.clone();
                let _ = tokio::task::spawn_blocking(move || tessera.rewarm()).await;
            }
        }
    }))
}
