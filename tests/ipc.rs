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
use tessera_testkit::evidence::{Evidence, record};
use tessera_testkit::fakes::{StackFake, StackFakeOptions, StytchFakeOptions};
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
    fn clipboard_holds(&self, text: &str) -> bool {
        self.read_clipboard().as_deref() == Some(text)
    }
    fn clear_clipboard(&self) {
        *self.clipboard.lock().unwrap() = None;
    }
    fn emit(&self, event: &AppEvent) {
        let seen = serde_json::to_vec(&event.as_notice()).expect("events serialize");
        record(Evidence::Clean, "event", &seen);
        self.events.lock().unwrap().push(event.clone());
    }
    fn focus(&self) {}
}

impl FakeDesktop {
    fn read_clipboard(&self) -> Option<String> {
        self.clipboard.lock().unwrap().clone()
    }
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
        Harness::with_clipboard_delay(Duration::from_millis(300))
    }

    fn with_clipboard_delay(delay: Duration) -> Harness {
        let dir = tessera_testkit::evidence::data_dir();
        let tessera = Tessera::open(Options {
            data_dir: dir.path().to_path_buf(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
            http: HttpConfig::default(),
        })
        .expect("opening the core");
        let desktop = Arc::new(FakeDesktop::default());
        let state = AppState::with_clipboard_delay(Arc::new(tessera), desktop.clone(), delay);
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
        let response = tokio::task::block_in_place(|| get_ipc_response(&self.webview, request))
            .map(|body| body.deserialize::<Value>().expect("JSON response"));
        let seen = match &response {
            Ok(v) | Err(v) => v.to_string(),
        };
        record(Evidence::Clean, cmd, seen.as_bytes());
        response
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    /// Invokes `cmd` (its `args` name the wait `wait_id`) and cancels the wait once `held`
    /// (the provider holding the command's request) is done. Should Cancel not end the wait,
    /// `release` lets the provider answer, so the test fails instead of hanging.
    fn invoke_cancelled(
        &self,
        cmd: &str,
        args: Value,
        wait_id: &str,
        held: impl Future<Output = ()> + Send,
        release: impl Future<Output = ()> + Send,
    ) -> Result<Value, Value> {
        let runtime = tokio::runtime::Handle::current();
        let (returned, has_returned) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let state = self.state.clone();
            scope.spawn(move || {
                runtime.block_on(held);
                assert!(state.cancel_wait(wait_id), "the wait {wait_id} is known");
                if has_returned.recv_timeout(Duration::from_secs(10)).is_err() {
                    runtime.block_on(release);
                }
            });
            let waited = self.invoke(cmd, args);
            let _ = returned.send(());
            waited
        })
    }
}

/// The Add provider form for a public OpenID Connect client returning over the deep link.
fn oidc_form(name: &str, issuer: &str) -> Value {
    json!({
        "kind": "oidc", "name": name,
        "values": { "issuer": issuer, "client_id": "tessera-public" },
        "clientAuth": "none", "redirectMode": "deep_link"
    })
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
    let provider = oidc_form("Local", &idp.issuer);
    let discovery = h.ok("check_provider", json!({ "provider": provider }));
    assert_eq!(discovery["issuer"], json!(idp.issuer));
    assert!(discovery["revocationEndpoint"].is_string());
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

    // A provider that does not answer: Cancel ends the wait at once, an unknown wait is not
    // cancelled, and the refresh the provider answers later is kept (with rotating refresh
    // tokens, losing it would make the next refresh fail).
    idp.stall("/token").await;
    assert!(!h.state.cancel_wait("w-2"), "no such wait");
    let waited = h.invoke_cancelled(
        "refresh_account",
        json!({ "accountId": account_id, "waitId": "w-1" }),
        "w-1",
        idp.held("/token"),
        idp.release("/token"),
    );
    assert_eq!(waited.unwrap_err()["code"], json!("cancelled"));
    assert_eq!(
        h.ok("cancel_wait", json!({ "waitId": "w-1" })),
        json!(false),
        "a wait that ended is not cancelled again"
    );
    idp.release("/token").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after_cancel = h.ok("refresh_account", json!({ "accountId": account_id }));
    assert_eq!(after_cancel["rotated"], json!(true));

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
async fn a_copied_token_is_cleared_when_the_app_exits_before_its_minute() {
    let idp = Idp::start(IdpOptions::default()).await;
    let h = Harness::with_clipboard_delay(Duration::from_secs(600));
    h.ok(
        "add_provider",
        json!({ "provider": oidc_form("Local", &idp.issuer) }),
    );
    let started = h.ok(
        "start_sign_in",
        json!({ "provider": "Local", "someoneElse": false }),
    );
    let auth_url = started["authorizationUrl"].as_str().unwrap();
    let callback = Browser::new().login(auth_url, "alice").await;
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    let accounts = h.ok("list_accounts", json!({}));
    let account_id = accounts[0]["id"].as_str().unwrap();
    h.ok("copy_access_token", json!({ "accountId": account_id }));
    assert!(h.desktop.read_clipboard().is_some());

    // The person closes the window before the minute is up: the app exits.
    let Harness {
        _app: app,
        webview,
        desktop,
        ..
    } = h;
    let at_exit: Arc<Mutex<Option<Option<String>>>> = Arc::default();
    let (seen, clipboard) = (at_exit.clone(), desktop.clone());
    tokio::task::block_in_place(|| {
        app.run(move |handle, event| {
            match event {
                tauri::RunEvent::Ready => webview.close().unwrap(),
                // The clipboard plugin lets go of the clipboard on `Exit`, before the app
                // hears of it: by then the token must be gone.
                tauri::RunEvent::Exit => {
                    *seen.lock().unwrap() = Some(clipboard.read_clipboard());
                }
                _ => {}
            }
            tessera_desktop::on_run_event(handle, event);
        })
    });
    assert_eq!(
        *at_exit.lock().unwrap(),
        Some(None),
        "the token outlived the app on the clipboard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_callback_waits_for_the_window() {
    let h = Harness::new();
    // Before ui_ready: the outcome is kept, not emitted.
    tessera_desktop::sign_in::complete(&h.state, "dev.tessera:/callback?code=x&state=old").await;
    assert!(h.desktop.take_events().is_empty());
    let notices = h.ok("ui_ready", json!({}));
    assert_eq!(notices[0]["type"], json!("sign_in_failed"));
    assert_eq!(notices[0]["code"], json!("unknown_state"));
    // Afterwards events go straight to the window.
    tessera_desktop::sign_in::complete(&h.state, "dev.tessera:/callback?code=x&state=old").await;
    assert_eq!(h.desktop.take_events().len(), 1);
    assert_eq!(h.ok("ui_ready", json!({})), json!([]));
}

/// The Add provider form for a kind, with the values of its spec's fields.
fn preset_form(kind: &str, name: &str, values: Value) -> Value {
    json!({
        "kind": kind, "name": name, "values": values,
        "clientAuth": null, "redirectMode": "deep_link"
    })
}

fn claim_of(report: &Value, name: &str) -> Value {
    report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name))
        .map(|c| c["value"].clone())
        .unwrap_or_else(|| panic!("no claim {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logto_preset_signs_in_and_shows_organization_tokens() {
    let idp = Idp::start(IdpOptions {
        flavor: tessera_testkit::Flavor::Logto,
        ..IdpOptions::default()
    })
    .await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    let form = preset_form(
        "logto",
        "Logto",
        json!({ "endpoint": idp.origin, "client_id": "tessera-public" }),
    );
    let checked = h.ok("check_provider", json!({ "provider": form }));
    assert_eq!(checked["issuer"], json!(format!("{}/oidc", idp.origin)));
    let added = h.ok("add_provider", json!({ "provider": form }));
    assert_eq!(
        (
            &added["spec"]["kind"],
            &added["spec"]["orgModel"],
            &added["spec"]["signIn"]
        ),
        (
            &json!("logto"),
            &json!("token_per_org"),
            &json!(["browser", "device"])
        )
    );
    assert!(
        added["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("urn:logto:scope:organizations"))
    );

    let started = h.ok(
        "start_sign_in",
        json!({ "provider": "Logto", "someoneElse": false, "org": null }),
    );
    let callback = Browser::new()
        .login(started["authorizationUrl"].as_str().unwrap(), "alice")
        .await;
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    let accounts = h.ok("list_accounts", json!({}));
    let account_id = accounts[0]["id"].as_str().unwrap().to_string();
    let orgs = h.ok("list_orgs", json!({ "accountId": account_id }));
    let ids: Vec<_> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("acme"), json!("globex")]);
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .all(|o| o["signedIn"] == json!(true))
    );

    h.desktop.take_events();
    let report = h.ok(
        "org_token_report",
        json!({ "accountId": account_id, "org": "globex", "kind": "access_token" }),
    );
    assert_eq!(
        claim_of(&report, "aud"),
        json!("urn:logto:organization:globex")
    );
    assert_eq!(report["verified"], json!(true), "{report}");
    assert!(
        h.desktop
            .take_events()
            .iter()
            .any(|e| matches!(e, AppEvent::AccountsChanged)),
        "the rotated refresh token is news for the window"
    );
    let no_org_id = h
        .invoke(
            "org_token_report",
            json!({ "accountId": account_id, "org": "globex", "kind": "id_token" }),
        )
        .unwrap_err();
    assert_eq!(no_org_id["code"], json!("unsupported"), "{no_org_id}");
    let switch = h
        .invoke(
            "switch_org",
            json!({ "accountId": account_id, "org": "acme" }),
        )
        .unwrap_err();
    assert_eq!(switch["code"], json!("unsupported"));

    // An organization sign-in at a provider without them is refused before the browser opens.
    let opened = h.desktop.opened.lock().unwrap().len();
    h.ok(
        "add_provider",
        json!({ "provider": oidc_form("Plain", &idp.issuer) }),
    );
    let refused = h
        .invoke(
            "start_sign_in",
            json!({ "provider": "Plain", "someoneElse": false, "org": "acme" }),
        )
        .unwrap_err();
    assert_eq!(refused["code"], json!("unsupported"));
    assert_eq!(h.desktop.opened.lock().unwrap().len(), opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stytch_link_comes_back_over_the_deep_link_and_the_window_picks_organizations() {
    let port = free_port();
    let loopback = format!("http://127.0.0.1:{port}/callback");
    let fake = tessera_testkit::fakes::StytchFake::start_with(StytchFakeOptions {
        redirect_urls: vec!["dev.tessera:/callback".into(), loopback.clone()],
        ..Default::default()
    })
    .await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    let form = preset_form(
        "stytch_b2b",
        "Stytch",
        json!({
            "project_id": fake.project_id, "base_url": fake.base_url,
            "secret": fake.secret
        }),
    );
    let checked = h.ok("check_provider", json!({ "provider": form }));
    assert!(
        checked["tokenEndpoint"]
            .as_str()
            .unwrap()
            .starts_with(&fake.base_url)
    );
    let added = h.ok("add_provider", json!({ "provider": form }));
    assert_eq!(
        (&added["spec"]["signIn"], &added["spec"]["orgModel"]),
        (&json!(["email_link"]), &json!("session_per_org"))
    );
    assert_eq!(
        added["redirectUrls"],
        json!(["http://127.0.0.1:8714/callback", "dev.tessera:/callback"]),
        "the exact URLs to register at Stytch (the default port)"
    );
    assert_no_secret(&added, &[&fake.secret]);

    let sent = h.ok(
        "send_email_link",
        json!({ "provider": "Stytch", "email": " alice@example.com " }),
    );
    assert_eq!(sent["email"], json!("alice@example.com"));
    let link = fake.latest_link_to("alice@example.com").await;
    h.desktop.take_events();
    tessera_desktop::sign_in::complete(&h.state, &link).await;
    let discovery = match h.desktop.take_events().as_slice() {
        [AppEvent::OrganizationsDiscovered(d)] => d.clone(),
        other => panic!("expected organizations-discovered, got {other:?}"),
    };
    assert!(
        discovery
            .organizations
            .iter()
            .any(|o| o.slug.as_deref() == Some("acme"))
    );

    // The same link again is refused and changes nothing.
    tessera_desktop::sign_in::complete(&h.state, &link).await;
    match h.desktop.take_events().as_slice() {
        [AppEvent::SignInFailed(f)] => assert_eq!(f.code, "unknown_state"),
        other => panic!("expected sign-in-failed, got {other:?}"),
    }

    let account = h.ok(
        "choose_organizations",
        json!({ "flowId": discovery.flow_id, "orgs": ["acme"] }),
    );
    let account_id = account["id"].as_str().unwrap().to_string();
    let report = h.ok(
        "org_token_report",
        json!({ "accountId": account_id, "org": "acme", "kind": "access_token" }),
    );
    assert_eq!(report["verified"], json!(true), "{report}");
    assert_no_secret(&report, &[&fake.secret]);
    let mfa = h
        .invoke(
            "org_token_report",
            json!({ "accountId": account_id, "org": "globex", "kind": "access_token" }),
        )
        .unwrap_err();
    assert!(
        mfa["message"].as_str().unwrap().contains("mfa_required"),
        "{mfa}"
    );
    let orgs = h.ok("list_orgs", json!({ "accountId": account_id }));
    let signed_in: Vec<_> = orgs
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["signedIn"] == json!(true))
        .map(|o| o["name"].clone())
        .collect();
    assert_eq!(signed_in, vec![json!("Acme")], "MFA left no session behind");

    // Through the SDK API, back to the loopback port the project registered.
    let mut form = preset_form(
        "stytch_b2b",
        "Stytch SDK",
        json!({
            "project_id": fake.project_id, "base_url": fake.base_url,
            "client_key": fake.public_token, "redirect_port": port.to_string()
        }),
    );
    form["redirectMode"] = json!("loopback");
    let added = h.ok("add_provider", json!({ "provider": form }));
    assert_eq!(added["redirectUrls"][0], json!(loopback));
    let sent = h.ok(
        "send_email_link",
        json!({ "provider": "Stytch SDK", "email": "bob@example.com" }),
    );
    let link = fake.latest_link_to("bob@example.com").await;
    assert!(link.starts_with(&format!("{loopback}?")), "{link}");
    h.desktop.take_events();
    let (status, _) = Browser::new().visit(&link).await;
    assert_eq!(status, 200);
    let discovered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(AppEvent::OrganizationsDiscovered(d)) = h
                .desktop
                .take_events()
                .into_iter()
                .find(|e| matches!(e, AppEvent::OrganizationsDiscovered(_)))
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("organizations-discovered");
    assert_eq!(discovered.provider, "Stytch SDK");
    assert_eq!(
        h.ok("cancel_sign_in", json!({ "flowId": sent["waitId"] })),
        json!(false),
        "the link ended the wait"
    );
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_user_who_must_verify_the_email_is_a_restricted_account() {
    let fake = StackFake::start_with(StackFakeOptions {
        require_email_verification: true,
        ..Default::default()
    })
    .await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    let form = preset_form(
        "stack_auth",
        "Stack",
        json!({
            "project_id": fake.project_id, "client_key": fake.publishable_key,
            "base_url": fake.base_url
        }),
    );
    h.ok("add_provider", json!({ "provider": form }));
    let erin = h.ok(
        "sign_in_with_password",
        json!({ "provider": "Stack", "email": "erin@example.com", "password": "demo" }),
    );
    assert_eq!(erin["status"], json!("active"));
    assert_eq!(erin["restriction"], json!("email_not_verified"));
    assert!(
        erin["restrictionHint"]
            .as_str()
            .unwrap()
            .contains("verify your e-mail"),
        "{erin}"
    );
    let id = erin["id"].as_str().unwrap().to_string();
    fake.verify_email("erin@example.com").await;
    h.ok("refresh_account", json!({ "accountId": id }));
    let accounts = h.ok("list_accounts", json!({}));
    assert_eq!(accounts[0]["restriction"], Value::Null, "{accounts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_password_sign_in_and_team_switch() {
    let fake = tessera_testkit::fakes::StackFake::start().await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    let form = preset_form(
        "stack_auth",
        "Stack",
        json!({
            "project_id": fake.project_id, "client_key": fake.publishable_key,
            "base_url": fake.base_url
        }),
    );
    h.ok("check_provider", json!({ "provider": form }));
    let added = h.ok("add_provider", json!({ "provider": form }));
    assert_eq!(
        added["spec"]["signIn"],
        json!(["oauth", "password", "mailed_code"])
    );

    let wrong = h
        .invoke(
            "sign_in_with_password",
            json!({ "provider": "Stack", "email": "alice@example.com", "password": "nope" }),
        )
        .unwrap_err();
    assert!(
        wrong["message"]
            .as_str()
            .unwrap()
            .contains("EMAIL_PASSWORD_MISMATCH"),
        "{wrong}"
    );
    assert_eq!(h.ok("list_accounts", json!({})), json!([]));

    // A provider that does not answer: Cancel ends the wait at once, and the sign-in the
    // provider completes later is kept.
    let sign_in_path = "/api/v1/auth/password/sign-in";
    fake.stall(sign_in_path).await;
    let waited = h.invoke_cancelled(
        "sign_in_with_password",
        json!({ "provider": "Stack", "email": "alice@example.com", "password": "demo",
                "waitId": "p-1" }),
        "p-1",
        fake.held(sign_in_path),
        fake.release(sign_in_path),
    );
    assert_eq!(waited.unwrap_err()["code"], json!("cancelled"));
    assert_eq!(
        h.ok("list_accounts", json!({})),
        json!([]),
        "not signed in yet"
    );
    fake.release(sign_in_path).await;
    let mut accounts = json!([]);
    for _ in 0..100 {
        accounts = h.ok("list_accounts", json!({}));
        if accounts.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accounts[0]["email"],
        json!("alice@example.com"),
        "kept: {accounts}"
    );

    let account = h.ok(
        "sign_in_with_password",
        json!({ "provider": "Stack", "email": "alice@example.com", "password": "demo" }),
    );
    let account_id = account["id"].as_str().unwrap().to_string();
    assert_eq!(
        account_id,
        accounts[0]["id"].as_str().unwrap(),
        "the same account"
    );
    let orgs = h.ok("list_orgs", json!({ "accountId": account_id }));
    let globex = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == json!("Team Globex"))
        .expect("Team Globex")
        .clone();
    assert_eq!(globex["current"], json!(false));
    let switched = h.ok(
        "switch_org",
        json!({ "accountId": account_id, "org": globex["id"] }),
    );
    assert!(
        switched["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == globex["id"] && o["current"] == json!(true))
    );
    let report = h.ok(
        "token_report",
        json!({ "accountId": account_id, "kind": "access_token" }),
    );
    assert_eq!(claim_of(&report, "selected_team_id"), globex["id"]);
    assert_eq!(report["verified"], json!(true));

    // Through the browser (GitHub behind Stack): always a loopback return address.
    let opened = h.desktop.opened.lock().unwrap().len();
    let unknown = h
        .invoke(
            "start_sign_in",
            json!({ "provider": "Stack", "someoneElse": false, "org": null, "oauthProvider": "myspace" }),
        )
        .unwrap_err();
    assert!(
        unknown["message"]
            .as_str()
            .unwrap()
            .contains("OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED"),
        "{unknown}"
    );
    assert_eq!(
        h.desktop.opened.lock().unwrap().len(),
        opened,
        "no browser for a refused start"
    );
    let started = h.ok(
        "start_sign_in",
        json!({ "provider": "Stack", "someoneElse": false, "org": null, "oauthProvider": "github" }),
    );
    assert_eq!(started["redirectMode"], json!("loopback"));
    // Through Stack to the upstream provider, where the browser is signed in as alice.
    let browser = Browser::new();
    let back = browser
        .login(
            started["authorizationUrl"].as_str().unwrap(),
            "alice@example.com",
        )
        .await;
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    h.desktop.take_events();
    browser.visit(&back).await;
    let completed = wait_for_sign_in(&h).await;
    assert_eq!(
        completed.flow_id,
        started["flowId"].as_str().map(String::from)
    );
    assert_eq!(
        completed.account.email.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        h.ok("list_accounts", json!({})).as_array().unwrap().len(),
        1,
        "the same person through another door"
    );

    // A mailed code: its link comes back to a loopback address...
    let sent = h.ok(
        "send_email_link",
        json!({ "provider": "Stack", "email": "bob@example.com" }),
    );
    let link = fake.latest_link_to("bob@example.com").await;
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    h.desktop.take_events();
    browser.visit(&link).await;
    let by_link = wait_for_sign_in(&h).await;
    assert_eq!(by_link.flow_id, sent["waitId"].as_str().map(String::from));
    assert_eq!(by_link.account.email.as_deref(), Some("bob@example.com"));
    // ...or its six characters are typed; then the link is no longer waited for.
    let sent = h.ok(
        "send_email_link",
        json!({ "provider": "Stack", "email": "bob@example.com" }),
    );
    let otp = fake.latest_otp_to("bob@example.com").await;
    let typed = h.ok(
        "sign_in_with_mailed_code",
        json!({ "provider": "Stack", "code": otp.to_lowercase() }),
    );
    assert_eq!(typed["email"], json!("bob@example.com"));
    assert_eq!(
        h.ok("cancel_sign_in", json!({ "flowId": sent["waitId"] })),
        json!(false),
        "the typed code ended the wait for the link"
    );
}

/// The next `sign-in-completed` event, waiting up to 10 s for it.
async fn wait_for_sign_in(h: &Harness) -> tessera_desktop::views::SignInCompleted {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(AppEvent::SignInCompleted(c)) = h
                .desktop
                .take_events()
                .into_iter()
                .find(|e| matches!(e, AppEvent::SignInCompleted(_)))
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a sign-in-completed event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_organizations_are_signed_in_one_by_one_from_the_window() {
    let idp = Idp::start(IdpOptions {
        flavor: tessera_testkit::Flavor::Auth0,
        ..IdpOptions::default()
    })
    .await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    // A local tenant has no https domain, so the form's issuer overrides the domain.
    let form = preset_form(
        "auth0",
        "Auth0",
        json!({
            "domain": "tenant.example.auth0.com", "issuer": idp.issuer,
            "client_id": "tessera-public", "audience": "https://api.example.test"
        }),
    );
    h.ok("check_provider", json!({ "provider": form }));
    let added = h.ok("add_provider", json!({ "provider": form }));
    assert_eq!(added["spec"]["orgModel"], json!("sign_in_per_org"));

    let sign_in = |org: &str| {
        let started = h.ok(
            "start_sign_in",
            json!({ "provider": "Auth0", "someoneElse": false, "org": org }),
        );
        let url = started["authorizationUrl"].as_str().unwrap().to_string();
        assert!(url.contains(&format!("organization={org}")), "{url}");
        url
    };
    let url = sign_in("acme");
    let callback = Browser::new().login(&url, "alice").await;
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    let account_id = h.ok("list_accounts", json!({}))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let acme = h.ok(
        "org_token_report",
        json!({ "accountId": account_id, "org": "acme", "kind": "access_token" }),
    );
    assert_eq!(claim_of(&acme, "org_id"), json!("org_acme"));
    assert_eq!(acme["verified"], json!(true), "{acme}");
    let missing = h
        .invoke(
            "org_token_report",
            json!({ "accountId": account_id, "org": "org_globex", "kind": "access_token" }),
        )
        .unwrap_err();
    assert_eq!(missing["code"], json!("org_sign_in_required"));

    let url = sign_in("globex");
    let callback = Browser::new().login(&url, "alice").await;
    tessera_desktop::sign_in::complete(&h.state, &callback).await;
    let accounts = h.ok("list_accounts", json!({}));
    assert_eq!(accounts.as_array().unwrap().len(), 1, "the same person");
    let orgs = h.ok("list_orgs", json!({ "accountId": account_id }));
    assert!(
        orgs.as_array().unwrap().len() == 2
            && orgs
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["signedIn"] == json!(true)),
        "{orgs}"
    );
    let switched = h.ok(
        "switch_org",
        json!({ "accountId": account_id, "org": "acme" }),
    );
    assert!(
        switched["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == json!("org_acme") && o["current"] == json!(true)),
        "{switched}"
    );
    let id_token = h.ok(
        "org_token_report",
        json!({ "accountId": account_id, "org": "org_globex", "kind": "id_token" }),
    );
    assert_eq!(claim_of(&id_token, "org_id"), json!("org_globex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_forms_and_wrong_provider_kinds_get_typed_errors_and_save_nothing() {
    let idp = Idp::start(IdpOptions::default()).await;
    let h = Harness::new();
    h.ok("ui_ready", json!({}));
    let code_of = |cmd: &str, args: Value| -> String {
        let e = h
            .invoke(cmd, args)
            .expect_err(&format!("{cmd} should fail"));
        assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
        e["code"].as_str().unwrap().to_string()
    };

    // Checking: plain http only on loopback; a dead API base; a base that is no Stack API.
    let insecure = preset_form("oidc", "X", json!({ "issuer": "http://login.example.com" }));
    assert_eq!(
        code_of("check_provider", json!({ "provider": insecure })),
        "insecure_url"
    );
    let dead = preset_form(
        "stack_auth",
        "X",
        json!({ "project_id": "p", "client_key": "k", "base_url": "http://127.0.0.1:9" }),
    );
    assert_eq!(
        code_of("check_provider", json!({ "provider": dead })),
        "network"
    );
    let not_stack = preset_form(
        "stytch_b2b",
        "X",
        json!({ "project_id": "p", "client_key": "k", "base_url": idp.issuer }),
    );
    assert!(
        ["http_status", "discovery_failed"]
            .contains(&code_of("check_provider", json!({ "provider": not_stack })).as_str())
    );

    // Saving: what each kind needs, or nothing is saved.
    let mut no_client = oidc_form("Local", &idp.issuer);
    no_client["values"]["client_id"] = json!("  ");
    assert_eq!(
        code_of("add_provider", json!({ "provider": no_client })),
        "invalid_config"
    );
    let auth0_nowhere = preset_form("auth0", "A", json!({ "client_id": "c" }));
    assert_eq!(
        code_of("add_provider", json!({ "provider": auth0_nowhere })),
        "invalid_config"
    );
    assert_eq!(h.ok("list_providers", json!({})), json!([]));

    // A sign-in of the wrong kind for the provider, or for nothing pending.
    h.ok(
        "add_provider",
        json!({ "provider": oidc_form("Local", &idp.issuer) }),
    );
    let opened = h.desktop.opened.lock().unwrap().len();
    for (cmd, args) in [
        (
            "send_email_link",
            json!({ "provider": "Local", "email": "a@example.com" }),
        ),
        (
            "sign_in_with_password",
            json!({ "provider": "Local", "email": "a@example.com", "password": "x" }),
        ),
        (
            "start_sign_in",
            json!({ "provider": "Local", "someoneElse": false, "org": null, "oauthProvider": "github" }),
        ),
    ] {
        let code = code_of(cmd, args);
        assert!(
            ["unsupported", "invalid_config"].contains(&code.as_str()),
            "{cmd}: {code}"
        );
    }
    assert_eq!(
        code_of(
            "choose_organizations",
            json!({ "flowId": "disc-forged", "orgs": ["acme"] })
        ),
        "unknown_state"
    );
    assert_eq!(
        code_of(
            "sign_in_with_mailed_code",
            json!({ "provider": "Local", "code": "ABC123" })
        ),
        "unknown_state"
    );
    for cmd in ["list_orgs", "switch_org", "org_token_report"] {
        let code = code_of(
            cmd,
            json!({ "accountId": "nobody", "org": "acme", "kind": "access_token" }),
        );
        assert_eq!(code, "unknown_account", "{cmd}");
    }
    assert_eq!(h.ok("list_accounts", json!({})), json!([]));
    assert_eq!(
        h.desktop.opened.lock().unwrap().len(),
        opened,
        "no browser opened"
    );
}
