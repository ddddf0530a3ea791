//! The desktop command layer without a window: Tauri's mock runtime dispatches real IPC
//! requests (JSON in, JSON out) to the app's commands, which run against the core with an
//! in-memory keychain and the real local provider (`tests/idp`). A recording fake stands in
//! for the browser, the clipboard and the window's events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use tessera_core::clock::SystemClock;
use tessera_core::http::HttpConfig;
use tessera_core::vault::MemoryStore;
use tessera_core::{Options, Tessera};
use tessera_desktop::desktop::Desktop;
use tessera_desktop::state::AppState;
use tessera_desktop::views::AppEvent;
use tessera_testkit::{Browser, Idp, IdpOptions, Profile};

/// Records what the shell asked of the desktop.
#[derive(Default)]
struct FakeDesktop {
    opened: Mutex<Vec<String>>,
    clipboard: Mutex<Option<String>>,
    events: Mutex<Vec<AppEvent>>,
}

impl Desktop for FakeDesktop {
    fn open_url(&self, url: &str) -> Result<(), String> {
        self.opened.lock().unwrap().push(url.to_string());
        Ok(())
    }
    fn write_clipboard(&self, text: &str) -> Result<(), String> {
        *self.clipboard.lock().unwrap() = Some(text.to_string());
        Ok(())
    }
    fn read_clipboard(&self) -> Option<String> {
        self.clipboard.lock().unwrap().clone()
    }
    fn clear_clipboard(&self) {
        *self.clipboard.lock().unwrap() = None;
    }
    fn emit(&self, event: &AppEvent) {
        self.events.lock().unwrap().push(event.clone());
    }
    fn focus(&self) {}
}

impl FakeDesktop {
    fn last_opened(&self) -> String {
        self.opened
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing was opened")
    }
    fn take_events(&self) -> Vec<AppEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

struct Harness {
    _app: tauri::App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    state: AppState,
    desktop: Arc<FakeDesktop>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let tessera = Tessera::open(Options {
            data_dir: dir.path().to_path_buf(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
            http: HttpConfig::default(),
        })
        .expect("opening the core");
        let desktop = Arc::new(FakeDesktop::default());
        let state = AppState::with_clipboard_delay(
            Arc::new(tessera),
            desktop.clone(),
            Duration::from_millis(300),
        );
        let app = mock_builder()
            .manage(state.clone())
            .invoke_handler(tessera_desktop::commands::handler())
            .build(mock_context(noop_assets()))
            .expect("building the mock app");
        let webview = WebviewWindowBuilder::new(&app, "main", WebviewUrl::default())
            .build()
            .expect("mock window");
        Harness {
            _app: app,
            webview,
            state,
            desktop,
            _dir: dir,
        }
    }

    /// Sends an IPC request as the web view would; `Err` is the serialized `IpcError`.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            // The window's own (local) origin, as the embedded UI would send it.
            url: self.webview.url().expect("window url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        tokio::task::block_in_place(|| get_ipc_response(&self.webview, request))
            .map(|body| body.deserialize::<Value>().expect("JSON response"))
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }
}

fn assert_no_secret(response: &Value, secrets: &[&str]) {
    let text = response.to_string();
    for s in secrets {
        assert!(
            !text.contains(s),
            "a token crossed into the web view: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_drive_a_whole_account_lifecycle() {
    let idp = Idp::start(IdpOptions {
        profile: Profile::Rotating,
        ..IdpOptions::default()
    })
    .await;
    let h = Harness::new();

    // Nothing yet; events before the window listens are kept for it.
    assert_eq!(h.ok("list_providers", json!({})), json!([]));
    let notices = h.ok("ui_ready", json!({}));
    assert_eq!(notices, json!([]));

    // Provider: discovery check, add, errors with their code.
    let discovery = h.ok("check_discovery", json!({ "issuer": idp.issuer }));
    assert_eq!(discovery["issuer"], json!(idp.issuer));
    assert!(discovery["revocationEndpoint"].is_string());
    let provider = json!({
        "name": "Local", "issuer": idp.issuer, "clientId": "tessera-public",
        "clientAuth": "none", "secret": null, "scopes": [], "audience": null,
        "resources": [], "redirectMode": "deep_link"
    });
    let added = h.ok("add_provider", json!({ "provider": provider }));
    assert_eq!(added["redirectMode"], json!("deep_link"));
    assert_eq!(added["scopes"][0], json!("openid"));
    let again = h
        .invoke("add_provider", json!({ "provider": provider }))
        .unwrap_err();
    assert_eq!(again["code"], json!("provider_exists"));
    let unknown = h
        .invoke(
            "start_sign_in",
            json!({ "provider": "Nope", "someoneElse": false }),
        )
        .unwrap_err();
    assert_eq!(unknown["code"], json!("unknown_provider"));
    assert!(unknown["message"].as_str().unwrap().contains("Nope"));

    // Sign-in: the browser is opened from Rust with the authorization URL.
    let started = h.ok(
        "start_sign_in",
        json!({ "provider": "Local", "someoneElse": false }),
    );
    let auth_url = started["authorizationUrl"].as_str().unwrap().to_string();
    assert_eq!(h.desktop.last_opened(), auth_url);
    assert_eq!(started["browserOpened"], json!(true));
    assert!(auth_url.contains("redirect_uri=dev.tessera%3A%2Fcallback"));
    let callback = Browser::new().login(&auth_url, "bob").await;
    assert!(callback.starts_with("dev.tessera:/callback?"), "{callback}");
    h.desktop.take_events();

    // A forged callback: an error event, no account.
    tessera_desktop::sign_in::complete(&h.state, "dev.tessera:/callback?code=x&state=forged").await;
    match h.desktop.take_events().as_slice() {
        [AppEvent::SignInFailed(f)] => {
            assert_eq!(f.code, "unknown_state");
            assert_eq!(f.flow_id.as_deref(), Some("forged"));
        }
        other => panic!("expected one sign-in-failed event, got {other:?}"),
    }
    assert_eq!(h.ok("list_accounts", json!({})), json!([]));

    // The real callback completes the flow and tells the window.
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    let events = h.desktop.take_events();
    let account_id = match events.as_slice() {
        [AppEvent::SignInCompleted(c), AppEvent::AccountsChanged] => {
            assert_eq!(c.flow_id.as_deref(), started["flowId"].as_str());
            assert_eq!(c.account.email.as_deref(), Some("bob@example.com"));
            c.account.id.clone()
        }
        other => panic!("expected sign-in-completed + accounts-changed, got {other:?}"),
    };
    // Replaying it is refused.
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    assert!(
        matches!(h.desktop.take_events().as_slice(), [AppEvent::SignInFailed(f)] if f.code == "state_replayed")
    );

    let tessera = h.state.tessera().clone();
    let access = tessera
        .access_token(&account_id, 0, false)
        .await
        .unwrap()
        .token;
    let id_token = tessera.id_token(&account_id, 0, false).await.unwrap().token;
    let secrets = [access.expose_secret(), id_token.expose_secret()];

    let accounts = h.ok("list_accounts", json!({}));
    assert_eq!(accounts[0]["name"], json!("Bob Example"));
    assert_eq!(accounts[0]["status"], json!("active"));
    assert_no_secret(&accounts, &secrets);

    // Reports: verified and explained, without the token.
    let report = h.ok(
        "token_report",
        json!({ "accountId": account_id, "kind": "id_token" }),
    );
    assert_eq!(report["verified"], json!(true));
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "signature" && c["status"] == "pass")
    );
    assert!(
        report["claims"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "iss" && c["description"].is_string())
    );
    assert_no_secret(&report, &secrets);

    // Copy: Rust writes the clipboard and clears it later if it still holds the token.
    let copied = h.ok("copy_access_token", json!({ "accountId": account_id }));
    assert_no_secret(&copied, &secrets);
    assert_eq!(
        h.desktop.read_clipboard().as_deref(),
        Some(access.expose_secret())
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.desktop.read_clipboard(), None, "clipboard not cleared");
    h.ok("copy_access_token", json!({ "accountId": account_id }));
    h.desktop
        .write_clipboard("something the person copied since")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        h.desktop.read_clipboard().as_deref(),
        Some("something the person copied since"),
        "the clipboard was cleared although it no longer held the token"
    );

    // Refresh: what changed, and the window is told.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = h.ok("refresh_account", json!({ "accountId": account_id }));
    assert_eq!(refreshed["rotated"], json!(true));
    assert_ne!(refreshed["expiresAt"], refreshed["previousExpiresAt"]);
    assert_no_secret(&refreshed, &secrets);

    // Sign out: revoked, logout page opened, account gone.
    let out = h.ok(
        "sign_out",
        json!({ "accountId": account_id, "revoke": true }),
    );
    assert_eq!(out["revoked"], json!(true));
    assert_eq!(out["logoutOpened"], json!(true));
    assert_eq!(
        Some(h.desktop.last_opened()),
        out["logoutUrl"].as_str().map(String::from)
    );
    assert_eq!(h.ok("list_accounts", json!({})), json!([]));
    let gone = h
        .invoke(
            "token_report",
            json!({ "accountId": account_id, "kind": "access_token" }),
        )
        .unwrap_err();
    assert_eq!(gone["code"], json!("unknown_account"));

    // Cancelled flows refuse their late callback.
    let started = h.ok(
        "start_sign_in",
        json!({ "provider": "Local", "someoneElse": true }),
    );
    assert!(
        started["authorizationUrl"]
            .as_str()
            .unwrap()
            .contains("prompt=login")
    );
    let late = Browser::new()
        .login(started["authorizationUrl"].as_str().unwrap(), "alice")
        .await;
    assert_eq!(
        h.ok("cancel_sign_in", json!({ "flowId": started["flowId"] })),
        json!(true)
    );
    h.desktop.take_events();
    tessera_desktop::sign_in::complete(&h.state, &late).await;
    assert!(matches!(
        h.desktop.take_events().as_slice(),
        [AppEvent::SignInFailed(_)]
    ));
    assert_eq!(h.ok("list_accounts", json!({})), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_callback_waits_for_the_window() {
    let h = Harness::new();
    // Before ui_ready: the outcome is kept, not emitted.
    tessera_desktop::sign_in::complete(&h.state, "dev.tessera:/callback?code=x&state=old").await;
    assert!(h.desktop.take_events().is_empty());
    let notices = h.ok("ui_ready", json!({}));
    assert_eq!(notices[0]["kind"], json!("sign_in_failed"));
    assert_eq!(notices[0]["code"], json!("unknown_state"));
    // Afterwards events go straight to the window.
    tessera_desktop::sign_in::complete(&h.state, "dev.tessera:/callback?code=x&state=old").await;
    assert_eq!(h.desktop.take_events().len(), 1);
    assert_eq!(h.ok("ui_ready", json!({})), json!([]));
}
