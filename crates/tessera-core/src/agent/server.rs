//! The agent side: a tokio Unix-socket server over one [`Tessera`], one JSON line in and one
//! out per connection. At most one agent serves a data directory (a lock file beside the
//! socket); a second one leaves at once.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;
use zeroize::Zeroize;

use super::{Answer, Failure, RefreshRow, Request};
use crate::engine::{IssuedToken, Tessera};
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::FileLock;

/// Serves `tessera` on `socket` until `idle` passes without a request or the data directory
/// disappears. Returns at once (`Ok(false)`) when another agent already serves it.
pub async fn serve(tessera: Arc<Tessera>, socket: &Path, idle: Duration) -> Result<bool> {
    let dir = socket
        .parent()
        .ok_or_else(|| Error::Storage(format!("{} has no directory", socket.display())))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::storage(&format!("create {}", dir.display()), e))?;
    let Some(_one_agent) = FileLock::try_acquire(&socket.with_extension("lock"))? else {
        return Ok(false);
    };
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| Error::storage(&format!("listen on {}", socket.display()), e))?;
    let private = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::metadata(socket));
    let owner = private
        .map_err(|e| Error::storage(&format!("secure {}", socket.display()), e))?
        .uid();
    #[cfg(target_os = "linux")]
    let watching = super::watch::start(tessera.clone());
    let mut deadline = Instant::now() + idle;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let (broken_tx, mut broken) = tokio::sync::mpsc::channel::<()>(1);
    // Requests being answered: the agent is not idle while one is (a long `refresh --all`).
    let busy = Arc::new(());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                deadline = Instant::now() + idle;
                let (tessera, broken_tx) = (tessera.clone(), broken_tx.clone());
                let working = Arc::clone(&busy);
                tokio::spawn(async move {
                    if answer(&tessera, stream, owner).await == Some(ErrorKind::Keychain) {
                        let _ = broken_tx.try_send(());
                    }
                    drop(working);
                });
            }
            // A keychain this agent cannot use (its session gone for good, or never there):
            // leave, so the next `tessera token` works directly and starts a fresh agent.
            _ = broken.recv() => break,
            _ = tokio::time::sleep_until(deadline) => {
                if Arc::strong_count(&busy) == 1 {
                    break;
                }
                deadline = Instant::now() + idle;
            }
            _ = tick.tick() => {
                if !tessera.data_dir().exists() || !socket.exists() {
                    break;
                }
            }
        }
    }
    #[cfg(target_os = "linux")]
    if let Some(watching) = watching {
        watching.abort();
    }
    let _ = std::fs::remove_file(socket);
    Ok(true)
}

/// Answers one connection; the class of the error it answered with, if any.
async fn answer(tessera: &Tessera, stream: UnixStream, owner: u32) -> Option<ErrorKind> {
    if stream.peer_cred().map(|c| c.uid()).ok() != Some(owner) {
        return None;
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut limited = BufReader::new(read.take(super::MAX_REQUEST as u64));
    let read = limited.read_line(&mut line);
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return None;
    }
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Token(request)) => request,
        Ok(Request::RefreshAll { refresh_all }) => {
            let outcome = tessera.refresh_all(refresh_all.parallel).await;
            let kind = outcome.as_ref().err().map(Error::kind);
            let answer = match outcome {
                Ok(outcomes) => Answer::Refreshed {
                    rows: outcomes
                        .iter()
                        .map(|(id, outcome)| RefreshRow::of(id, outcome))
                        .collect(),
                },
                Err(e) => failed(&e),
            };
            write_answer(&mut write, &answer).await;
            return kind;
        }
        Err(e) => {
            let e = Error::InvalidConfig(format!("not a request: {e}"));
            return send(&mut write, Err(e)).await;
        }
    };
    // A refreshed token that may be stored after it is handed out is answered with at once;
    // the transaction goes on to store it (see `Handover`).
    let (handover, early) = tokio::sync::oneshot::channel();
    let work = tessera.token_handing_over(&request, Some(handover));
    tokio::pin!(work);
    tokio::select! {
        outcome = &mut work => send(&mut write, outcome).await,
        Ok(issued) = early => {
            send(&mut write, Ok(issued)).await;
            drop(write);
            work.await.err().map(|e| e.kind())
        }
    }
}

/// Writes the answer to a request; the class of the error it answered with, if any.
async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    outcome: Result<(String, IssuedToken)>,
) -> Option<ErrorKind> {
    let kind = outcome.as_ref().err().map(Error::kind);
    let answer = match outcome {
        Ok((account_id, issued)) => Answer::Token {
            account_id,
            token: issued.token.expose_secret().to_string(),
            expires_at: issued.expires_at,
            refreshed: issued.refreshed,
        },
        Err(e) => failed(&e),
    };
    write_answer(write, &answer).await;
    if let Answer::Token { mut token, .. } = answer {
        token.zeroize();
    }
    kind
}

/// Writes one answer line, wiping the bytes written.
async fn write_answer(write: &mut tokio::net::unix::OwnedWriteHalf, answer: &Answer) {
    if let Ok(mut out) = serde_json::to_vec(answer) {
        out.push(b'\n');
        let _ = write.write_all(&out).await;
        out.zeroize();
    }
}

fn failed(e: &Error) -> Answer {
    Answer::Failed(Failure::of(e))
}
