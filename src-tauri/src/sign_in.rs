//! Sign-in from the desktop: start a flow, open the system browser (or mail a link), and
//! finish it when the provider's redirect comes back. The core decides everything about the
//! provider (which parameters, which way back); this module only wires the ways back:
//! - deep link (`dev.tessera:/callback`, RFC 8252 §7.1): the OS hands the URL to a second
//!   launch of the app, single-instance forwards it to this process, and [`complete`] runs;
//! - loopback (`http://127.0.0.1:PORT/callback`, RFC 8252 §7.3): a background task waits for
//!   it, which Cancel stops.
//!
//! The state, PKCE verifier, nonce and mail proofs never leave the core; the outcome reaches
//! the window as a `sign-in-completed`, `sign-in-failed` or `organizations-discovered` event
//! tagged with the flow or wait id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_core::flow::{DEEP_LINK_REDIRECT, FLOW_TTL};
use tessera_core::{EmailLinkOutcome, Error, RedirectMode, SignInRequest, SignInStart};
use tokio::sync::oneshot;

use crate::error::{IpcError, IpcResult};
use crate::state::AppState;
use crate::views::{
    AccountView, AppEvent, EmailLinkSent, SignInCompleted, SignInFailed, SignInStarted,
};

/// The wait id prefix of a mailed link coming back over loopback.
pub const EMAIL_LINK_WAIT: &str = "email-link:";

/// Starts a browser sign-in and opens the browser.
pub async fn start(state: &AppState, request: SignInRequest) -> IpcResult<SignInStarted> {
    let tessera = state.tessera();
    let params = tessera.sign_in_params(&request)?;
    let provider = request.provider;
    let mode = tessera.redirect_mode(&provider)?;
    let start = match mode {
        RedirectMode::DeepLink => {
            tessera
                .start_sign_in(&provider, DEEP_LINK_REDIRECT, &params)
                .await?
        }
        RedirectMode::Loopback => start_loopback(state, &provider, params).await?,
    };
    let opened = state.desktop().open_url(&start.authorization_url);
    Ok(SignInStarted {
        flow_id: start.flow_id,
        provider: start.provider,
        authorization_url: start.authorization_url,
        redirect_mode: mode,
        expires_at: start.expires_at,
        browser_opened: opened.is_ok(),
        browser_error: opened.err(),
    })
}

/// Abandons a sign-in or a mailed link's wait; a late callback for it is refused.
pub fn cancel(state: &AppState, flow_id: &str) -> bool {
    state.cancel_wait(flow_id) || state.tessera().cancel_sign_in(flow_id)
}

/// Completes a sign-in from a `dev.tessera:/callback?...` URL and tells the window: a mailed
/// link a waiting e-mail sign-in takes, or a browser sign-in's redirect.
pub async fn complete(state: &AppState, url: &str) {
    state.desktop().focus();
    if state.tessera().is_email_link(url) {
        let outcome = state.tessera().complete_email_link(url).await;
        report_link(state, None, outcome);
        return;
    }
    let flow_id = url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
    });
    let result = state.tessera().complete_sign_in(url).await;
    report(state, flow_id, result.map(Into::into));
}

/// Mails a sign-in link to `email`. It comes back the way the provider allows: over the deep
/// link (to [`complete`]; Stytch's default), or to a loopback address where a background
/// wait takes it (named by the returned wait id, which Cancel and a typed code stop) — on
/// the provider's registered port where it matches redirect URLs exactly (Stytch).
pub async fn send_email_link(
    state: &AppState,
    provider: &str,
    email: &str,
) -> IpcResult<EmailLinkSent> {
    let tessera = state.tessera();
    let wait_id = format!("{EMAIL_LINK_WAIT}{provider}");
    if tessera.redirect_mode(provider)? == RedirectMode::DeepLink {
        let sent = tessera
            .start_email_sign_in(provider, email, DEEP_LINK_REDIRECT)
            .await?;
        return Ok(EmailLinkSent::new(wait_id, sent));
    }
    let receiver = tessera.loopback_receiver(provider).await?;
    let sent = tessera
        .start_email_sign_in(provider, email, &receiver.redirect_uri())
        .await?;
    let wait = Duration::from_secs(sent.expires_at.saturating_sub(tessera.now()));
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    state.track_wait(&wait_id, cancel_tx);
    let (task_state, task_provider, task_wait) =
        (state.clone(), provider.to_string(), wait_id.clone());
    tauri::async_runtime::spawn(async move {
        let link = tokio::select! {
            link = receiver.receive() => link,
            _ = tokio::time::sleep(wait) => {
                task_state.forget_wait(&task_wait);
                return;
            }
            _ = cancel_rx => return,
        };
        task_state.forget_wait(&task_wait);
        task_state.desktop().focus();
        let outcome = match link {
            Ok(url) => {
                task_state
                    .tessera()
                    .complete_email_link_for(&task_provider, &url)
                    .await
            }
            Err(e) => Err(e),
        };
        report_link(&task_state, Some(task_wait), outcome);
    });
    Ok(EmailLinkSent::new(wait_id, sent))
}

/// Signs in with the short code from the mail and stops waiting for its link.
pub async fn type_code(state: &AppState, provider: &str, code: &str) -> IpcResult<AccountView> {
    let account = state
        .tessera()
        .sign_in_with_mailed_code(provider, code)
        .await?;
    state.cancel_wait(&format!("{EMAIL_LINK_WAIT}{provider}"));
    state.notify(AppEvent::AccountsChanged);
    Ok(account.into())
}

fn report_link(
    state: &AppState,
    wait_id: Option<String>,
    outcome: Result<EmailLinkOutcome, Error>,
) {
    match outcome {
        Ok(EmailLinkOutcome::PickOrganizations(discovery)) => {
            state.notify(AppEvent::OrganizationsDiscovered(discovery.into()))
        }
        Ok(EmailLinkOutcome::SignedIn(account)) => {
            let wait_id =
                wait_id.unwrap_or_else(|| format!("{EMAIL_LINK_WAIT}{}", account.provider));
            report(state, Some(wait_id), Ok((*account).into()))
        }
        Err(e) => report(state, wait_id, Err(e)),
    }
}

fn report(state: &AppState, flow_id: Option<String>, result: Result<AccountView, Error>) {
    match result {
        Ok(account) => {
            state.notify(AppEvent::SignInCompleted(SignInCompleted {
                flow_id,
                account,
            }));
            state.notify(AppEvent::AccountsChanged);
        }
        Err(Error::Cancelled { .. }) => {}
        Err(e) => {
            eprintln!("tessera: sign-in failed: {e} [{}]", e.code());
            state.notify(AppEvent::SignInFailed(SignInFailed {
                flow_id,
                code: e.code().to_string(),
                message: e.to_string(),
            }));
        }
    }
}

type Started = Result<SignInStart, IpcError>;

/// Runs the core's loopback sign-in in the background and returns once it has started.
async fn start_loopback(
    state: &AppState,
    provider: &str,
    params: Vec<(String, String)>,
) -> IpcResult<SignInStart> {
    let (started_tx, started_rx) = oneshot::channel::<Started>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let flow_id: Arc<Mutex<Option<String>>> = Arc::default();

    let task_state = state.clone();
    let provider = provider.to_string();
    let (task_started, task_flow) = (started_tx.clone(), flow_id.clone());
    tauri::async_runtime::spawn(async move {
        let result = task_state
            .tessera()
            .sign_in_with_loopback(
                &provider,
                &params,
                |start| {
                    *task_flow.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(start.flow_id.clone());
                    if let Some(tx) = task_started
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                    {
                        let _ = tx.send(Ok(start.clone()));
                    }
                },
                Duration::from_secs(FLOW_TTL),
                cancelled(cancel_rx),
            )
            .await;
        // Failed before the flow started: the command itself reports it.
        if let Some(tx) = task_started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send(Err(result.err().map(IpcError::from).unwrap_or_else(|| {
                IpcError::new("internal", "the sign-in ended before it began")
            })));
            return;
        }
        let flow_id = task_flow.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(id) = &flow_id {
            task_state.forget_wait(id);
        }
        if result.is_ok() {
            task_state.desktop().focus();
        }
        report(&task_state, flow_id, result.map(Into::into));
    });

    let start = started_rx
        .await
        .map_err(|_| IpcError::new("internal", "the sign-in task stopped unexpectedly"))??;
    state.track_wait(&start.flow_id, cancel_tx);
    Ok(start)
}

async fn cancelled(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}
