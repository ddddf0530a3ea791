//! Browser sign-in from the desktop: start a flow, open the system browser, and finish it when
//! the provider's redirect comes back.
//!
//! Two ways back, chosen by the provider's `redirect_mode`:
//! - deep link (`dev.tessera:/callback`, RFC 8252 §7.1): the OS hands the URL to a second
//!   launch of the app, single-instance forwards it to this process, and [`complete`] runs;
//! - loopback (`http://127.0.0.1:PORT/callback`, RFC 8252 §7.3, what the CLI uses): the core
//!   listens in a background task, which Cancel stops.
//!
//! The state, PKCE verifier and nonce never leave the core; the outcome reaches the window as
//! a `sign-in-completed` or `sign-in-failed` event tagged with the flow id (the `state`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_core::flow::{DEEP_LINK_REDIRECT, FLOW_TTL, query_param};
use tessera_core::loopback::LoopbackReceiver;
use tessera_core::stack::OAUTH_PROVIDER_PARAM;
use tessera_core::{Error, ProviderKind, RedirectMode, SecretString, SignInStart};
use tokio::sync::oneshot;

use crate::error::{IpcError, IpcResult};
use crate::state::AppState;
use crate::views::{
    AccountView, AppEvent, MailedCodeSent, SignInCompleted, SignInFailed, SignInStarted,
};

/// The wait id prefix of a mailed Stack Auth code's link.
pub const MAILED_CODE_WAIT: &str = "mailed-code:";
/// How long the mailed link is waited for.
const MAILED_CODE_SECS: u64 = 3600;

/// Starts a sign-in at `provider` and opens the browser. `someone_else` forces the provider's
/// login screen (`prompt=login`) so another person can sign in; `org` asks for one
/// organization; `oauth_provider` picks the identity provider behind Stack Auth (`github`, …).
pub async fn start(
    state: &AppState,
    provider: &str,
    someone_else: bool,
    org: Option<&str>,
    oauth_provider: Option<&str>,
) -> IpcResult<SignInStarted> {
    let config = state.tessera().provider(provider)?;
    let mut params = Vec::new();
    if let Some(oauth) = oauth_provider.map(str::trim).filter(|o| !o.is_empty()) {
        if config.kind != ProviderKind::StackAuth {
            return Err(Error::Unsupported(format!(
                "signing in through {oauth} at a {} provider (only Stack Auth offers that)",
                config.kind.as_str()
            ))
            .into());
        }
        params.push((OAUTH_PROVIDER_PARAM.to_string(), oauth.to_string()));
    }
    if someone_else {
        params.push(("prompt".to_string(), "login".to_string()));
    }
    if let Some(org) = org.map(str::trim).filter(|o| !o.is_empty()) {
        let param = config.kind.org_sign_in_param().ok_or_else(|| {
            Error::Unsupported(format!(
                "signing in to an organization at a {} provider",
                config.kind.as_str()
            ))
        })?;
        params.push((param.to_string(), org.to_string()));
    }
    // Stack Auth accepts only registered web origins and loopback addresses as return URLs.
    let mode = match config.kind {
        ProviderKind::StackAuth => RedirectMode::Loopback,
        _ => config.redirect_mode,
    };
    let start = match mode {
        RedirectMode::DeepLink => {
            state
                .tessera()
                .start_sign_in(provider, DEEP_LINK_REDIRECT, &params)
                .await?
        }
        RedirectMode::Loopback => start_loopback(state, provider, params).await?,
    };
    let opened = state.desktop().open_url(&start.authorization_url);
    Ok(SignInStarted {
        flow_id: start.flow_id,
        provider: start.provider,
        authorization_url: start.authorization_url,
        redirect_mode: mode.into(),
        expires_at: start.expires_at,
        browser_opened: opened.is_ok(),
        browser_error: opened.err(),
    })
}

/// Abandons a sign-in; a late callback for it is refused.
pub fn cancel(state: &AppState, flow_id: &str) -> bool {
    state.cancel_loopback(flow_id) || state.tessera().cancel_sign_in(flow_id)
}

/// Completes a sign-in from a `dev.tessera:/callback?...` URL and tells the window: a browser
/// sign-in's redirect, or a Stytch B2B discovery link, whose organizations the window then
/// offers to pick from.
pub async fn complete(state: &AppState, url: &str) {
    if tessera_core::stytch::is_discovery_callback(url) {
        state.desktop().focus();
        match state.tessera().complete_email_link(url).await {
            Ok(discovery) => state.notify(AppEvent::OrganizationsDiscovered(discovery.into())),
            Err(e) => report(state, None, Err(e)),
        }
        return;
    }
    let flow_id = url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
    });
    state.desktop().focus();
    let result = state.tessera().complete_sign_in(url).await;
    report(state, flow_id, result.map(Into::into));
}

/// Stack Auth: mails a sign-in code to `email`. The mail's link comes back to a one-time
/// loopback address (Stack accepts no custom scheme), where a background wait finishes the
/// sign-in; the six characters it shows can be typed instead ([`MAILED_CODE_WAIT`] names the
/// wait, which Cancel and a typed code stop).
pub async fn send_code(state: &AppState, provider: &str, email: &str) -> IpcResult<MailedCodeSent> {
    let receiver = LoopbackReceiver::bind().await?;
    state
        .tessera()
        .send_sign_in_code(provider, email, &receiver.redirect_uri())
        .await?;
    let wait_id = format!("{MAILED_CODE_WAIT}{provider}");
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    state.track_loopback(&wait_id, cancel_tx);
    let (task_state, task_provider, task_wait) =
        (state.clone(), provider.to_string(), wait_id.clone());
    tauri::async_runtime::spawn(async move {
        let link = tokio::select! {
            link = receiver.receive() => link,
            _ = tokio::time::sleep(Duration::from_secs(MAILED_CODE_SECS)) => {
                task_state.forget_loopback(&task_wait);
                return;
            }
            _ = cancel_rx => return,
        };
        task_state.forget_loopback(&task_wait);
        let result = match link.map(|url| query_param(&url, "code")) {
            Ok(Some(code)) => {
                task_state.desktop().focus();
                task_state
                    .tessera()
                    .sign_in_with_code(&task_provider, &SecretString::new(code))
                    .await
            }
            Ok(None) => Err(Error::MalformedCallback(
                "the sign-in link carried no code".into(),
            )),
            Err(e) => Err(e),
        };
        report(&task_state, Some(task_wait), result.map(Into::into));
    });
    Ok(MailedCodeSent {
        wait_id,
        provider: provider.to_string(),
        email: email.to_string(),
        expires_at: state.tessera().now() + MAILED_CODE_SECS,
    })
}

/// Stack Auth: signs in with the six characters from the mail and stops waiting for its link.
pub async fn type_code(state: &AppState, provider: &str, code: &str) -> IpcResult<AccountView> {
    let account = state
        .tessera()
        .sign_in_with_mailed_code(provider, code)
        .await?;
    state.cancel_loopback(&format!("{MAILED_CODE_WAIT}{provider}"));
    state.notify(AppEvent::AccountsChanged);
    Ok(account.into())
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
        Err(Error::Cancelled(_)) => {}
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
                async {
                    let _ = cancel_rx.await;
                },
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
            task_state.forget_loopback(id);
        }
        if result.is_ok() {
            task_state.desktop().focus();
        }
        report(&task_state, flow_id, result.map(Into::into));
    });

    let start = started_rx
        .await
        .map_err(|_| IpcError::new("internal", "the sign-in task stopped unexpectedly"))??;
    state.track_loopback(&start.flow_id, cancel_tx);
    Ok(start)
}
