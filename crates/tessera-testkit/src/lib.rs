//! Test harness for Tessera's integration tests. Not part of the product.
//!
//! - [`Idp`] starts the real OpenID provider in `tests/idp` (Node + `oidc-provider`) on
//!   `127.0.0.1`, with its test hooks, and kills it when dropped. [`IdpOptions::flavor`] makes it
//!   emulate Auth0, Logto or Stitch SSO ([`Flavor`]).
//! - [`Browser`] plays the person in the browser: follows the authorization URL, fills in the login
//!   form, approves device codes, and hands back the redirect that would reach the app.
//! - [`signing_key_pem`] and [`client_pkjwt_pem`] give the committed, test-only private keys.
//! - [`scripted`] is an in-process OpenID provider whose every answer a test can replace with
//!   a hostile one, and which forges tokens (the adversarial suite).
//! - [`evidence`] keeps data directories and output for the secret scan (`tests/secret-scan`).
//! - [`fakes`] starts the hand-written stand-ins for the two closed cloud APIs in `tests/fakes`
//!   ([`StytchFake`], [`StackFake`]).
//!
//! Needs `node` on `PATH` (or `TESSERA_TEST_NODE`) and, for [`Idp`], `npm ci` run once in
//! `tests/idp` (the fakes have no npm dependencies).
//! Everything here panics with context instead of returning errors: it is meant for tests.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use url::Url;

pub mod evidence;
pub mod fakes;
pub mod scripted;
pub use fakes::{StackFake, StackFakeOptions, StytchFake, StytchFakeOptions};
pub use scripted::{Answer, Forge, Key, ScriptedIdp};

/// Refresh-token behaviour of the provider (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Refresh tokens never rotate.
    #[default]
    Plain,
    /// Every refresh returns a new refresh token; replaying a consumed one is `invalid_grant`
    /// and revokes the whole grant (reuse detection).
    Rotating,
}

impl Profile {
    fn as_arg(self) -> &'static str {
        match self {
            Profile::Plain => "plain",
            Profile::Rotating => "rotating",
        }
    }
}

/// Which identity provider `tests/idp` emulates (`--flavor`); see tests/idp/README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Plain oidc-provider: issuer `http://127.0.0.1:PORT`, routes `/auth`, `/token`, `/me`, …
    #[default]
    Generic,
    /// Auth0: issuer `http://127.0.0.1:PORT/` (trailing slash), `/authorize`, `/oauth/token`,
    /// `/userinfo`, `/oauth/revoke`, `/oauth/device/code`, `/v2/logout`; `audience`,
    /// `organization` (`org_acme` / `acme`), `screen_hint`; `org_id` / `org_name` claims;
    /// subjects `auth0|alice`; no introspection.
    Auth0,
    /// Logto: issuer `http://127.0.0.1:PORT/oidc`, everything under `/oidc`; organizations in
    /// the ID token; organization tokens via the refresh grant with `organization_id`. Refresh
    /// tokens of the public client always rotate (the `profile` option is not passed).
    Logto,
    /// Stitch SSO: `/connect/*` routes, `nonce` of 32–300 characters required, private_key_jwt
    /// assertions with `aud` = token URL, single-use refresh tokens (the `profile` option is
    /// not passed), 15-minute access tokens by default, no device flow, no organizations.
    Stitch,
}

impl Flavor {
    fn as_arg(self) -> &'static str {
        match self {
            Flavor::Generic => "generic",
            Flavor::Auth0 => "auth0",
            Flavor::Logto => "logto",
            Flavor::Stitch => "stitch",
        }
    }

    /// Whether `--profile` applies (Logto and Stitch always rotate public clients' tokens).
    fn takes_profile(self) -> bool {
        matches!(self, Flavor::Generic | Flavor::Auth0)
    }
}

/// How to start the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpOptions {
    /// Refresh-token rotation; applies to [`Flavor::Generic`] and [`Flavor::Auth0`] only.
    pub profile: Profile,
    /// Access-token lifetime in seconds. The default, `3600`, means the flavor's own default:
    /// 3600 (generic, Logto), 86400 (Auth0), 900 (Stitch); any other value is passed as is.
    pub access_ttl: u64,
    /// Signing keys published in the JWKS, `"a"` and/or `"b"`; the first signs new tokens.
    pub signing_keys: Vec<&'static str>,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The provider to emulate.
    pub flavor: Flavor,
}

impl Default for IdpOptions {
    fn default() -> Self {
        IdpOptions {
            profile: Profile::Plain,
            access_ttl: 3600,
            signing_keys: vec!["a"],
            port: 0,
            flavor: Flavor::Generic,
        }
    }
}

/// A running `tests/idp/server.mjs` (always with `--test-hooks`). Killed on drop.
pub struct Idp {
    /// The issuer exactly as the provider states it: `http://127.0.0.1:PORT` (generic, Stitch),
    /// `http://127.0.0.1:PORT/` (Auth0, trailing slash), `http://127.0.0.1:PORT/oidc` (Logto).
    pub issuer: String,
    pub port: u16,
    /// The emulated provider.
    pub flavor: Flavor,
    /// `http://127.0.0.1:PORT` (where the test hooks and the login pages live).
    pub origin: String,
    child: Child,
    log: Log,
    http: reqwest::Client,
}

pub(crate) type Log = Arc<Mutex<VecDeque<String>>>;
const LOG_LINES: usize = 200;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
pub(crate) fn repo_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .expect("tessera-testkit lives at <repo>/crates/tessera-testkit")
        .to_path_buf()
}

/// `<repo>/tests/idp`.
pub fn idp_dir() -> PathBuf {
    repo_dir().join("tests").join("idp")
}

fn read_key(name: &str) -> String {
    let path = idp_dir().join("keys").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// PKCS#8 PEM of the provider signing key `"a"` (kid `key-a`) or `"b"` (kid `key-b`), RS256.
/// Test-only key, committed in `tests/idp/keys`; use it to forge tokens.
pub fn signing_key_pem(name: &str) -> String {
    assert!(
        matches!(name, "a" | "b"),
        "unknown signing key {name:?} (expected \"a\" or \"b\")"
    );
    read_key(&format!("signing-{name}.pem"))
}

/// PKCS#8 PEM of the `tessera-pkjwt` client's key (kid `client-pkjwt`, RS256). Test-only.
pub fn client_pkjwt_pem() -> String {
    read_key("client-pkjwt.pem")
}

pub(crate) fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building reqwest client")
}

impl Idp {
    /// Starts the provider and waits (up to 30 s) until it listens.
    ///
    /// Panics if `tests/idp/node_modules` is missing (run `npm ci` in `tests/idp`), if node
    /// cannot be started, or if the server does not come up.
    pub async fn start(opts: IdpOptions) -> Idp {
        let dir = idp_dir();
        assert!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "{}/node_modules is missing: run `npm ci` in tests/idp",
            dir.display()
        );
        // A fixed port may still be held for a moment by a process we just killed.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn(&opts).await {
                Ok(idp) => return idp,
                Err(e) if opts.port != 0 && attempt < 20 && e.contains("EADDRINUSE") => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("starting tests/idp/server.mjs: {e}"),
            }
        }
    }

    async fn spawn(opts: &IdpOptions) -> Result<Idp, String> {
        let mut args = vec![
            "server.mjs".to_owned(),
            "--flavor".to_owned(),
            opts.flavor.as_arg().to_owned(),
            "--port".to_owned(),
            opts.port.to_string(),
        ];
        if opts.flavor.takes_profile() {
            args.extend(["--profile".to_owned(), opts.profile.as_arg().to_owned()]);
        }
        // 3600 (the default) means "the flavor's own default".
        if opts.access_ttl != IdpOptions::default().access_ttl {
            args.extend(["--access-ttl".to_owned(), opts.access_ttl.to_string()]);
        }
        args.extend([
            "--signing-keys".to_owned(),
            opts.signing_keys.join(","),
            "--test-hooks".to_owned(),
        ]);
        let NodeChild { child, log, ready } = spawn_node(&idp_dir(), &args, "idp").await?;
        let issuer = ready["issuer"]
            .as_str()
            .ok_or_else(|| format!("no issuer in {ready}"))?
            .to_owned();
        let port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("no port in {ready}"))?;
        Ok(Idp {
            issuer,
            port,
            flavor: opts.flavor,
            origin: format!("http://127.0.0.1:{port}"),
            child,
            log,
            http: test_client(),
        })
    }

    /// Stops the provider and starts it again on the same port (same issuer) with `opts`
    /// (`opts.port` is ignored). All provider state (sessions, grants, tokens) is lost. Keep
    /// `opts.flavor`: the issuer must not change.
    pub async fn restart(&mut self, opts: IdpOptions) {
        let _ = self.child.kill().await;
        let opts = IdpOptions {
            port: self.port,
            ..opts
        };
        let new = Idp::start(opts).await;
        assert_eq!(new.issuer, self.issuer, "issuer changed across restart");
        *self = new;
    }

    /// `issuer + path` (without doubling the slash of Auth0's issuer), e.g.
    /// `idp.url("/token")`; for Logto that is `http://127.0.0.1:PORT/oidc/token`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer.trim_end_matches('/'), path)
    }

    /// `http://127.0.0.1:PORT` + `path`, ignoring the issuer's path (Logto's `/oidc`).
    pub fn origin_url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    /// The discovery document's URL: `<issuer without trailing slash>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// Arms a one-shot fault for the next request to `path`, the full path as the client sends
    /// it (e.g. `"/token"`, `"/oauth/token"` for Auth0, `"/oidc/token"` for Logto). Kinds:
    /// `html`, `truncated`, `huge`, `wrong_content_type`, `slow`, `redirect`, `status500_json`,
    /// `stall` (see [`Idp::stall`]), `id_token_bad_signature` and `id_token_other_sub` (the
    /// request is served, then its answer's ID token is re-signed with the wrong key, or names
    /// the other demo user; event `test.id_token_forged` carries `access_token_sha256`, the
    /// base64url SHA-256 of that answer's access token).
    /// `huge_expires_in` (an `expires_in` that overflows any `now +`).
    pub async fn sabotage(&self, path: &str, kind: &str) {
        let resp = self
            .http
            .post(self.origin_url("/__test/sabotage"))
            .json(&serde_json::json!({ "path": path, "kind": kind }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /__test/sabotage: {e}"));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "arming sabotage {kind} on {path}: {status} {body}"
        );
    }

    /// Holds the next request to `path` before the provider sees it, until [`Idp::release`].
    pub async fn stall(&self, path: &str) {
        self.sabotage(path, "stall").await;
    }

    /// Waits until a request to `path` is held by [`Idp::stall`] (panics after 60 s).
    pub async fn held(&self, path: &str) {
        let resp = self
            .http
            .get(self.origin_url("/__test/stalled"))
            .query(&[("path", path)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("waiting for a request to {path} to be held: {e}"));
        assert!(
            resp.status().is_success(),
            "GET /__test/stalled: {}",
            resp.status()
        );
    }

    /// Lets the request held on `path` go on; panics if none is held.
    pub async fn release(&self, path: &str) {
        let resp = self
            .http
            .post(self.origin_url("/__test/release"))
            .json(&serde_json::json!({ "path": path }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /__test/release: {e}"));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "releasing {path}: {status} {body}");
    }

    /// The provider's event log: a JSON array of `{event, at, ...}` (see tests/idp/README.md).
    pub async fn events(&self) -> serde_json::Value {
        let resp = self
            .http
            .get(self.origin_url("/__test/events"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /__test/events: {e}"));
        assert!(
            resp.status().is_success(),
            "GET /__test/events: {}",
            resp.status()
        );
        resp.json().await.expect("events are JSON")
    }

    /// The last lines the server wrote to stderr (for assertion messages).
    pub fn stderr_tail(&self) -> String {
        tail(&self.log)
    }
}

/// A Node child process started by the harness: killed on drop, stderr forwarded to the test's
/// stderr (prefixed with its label) and kept in `log`, stdout drained after the first line.
pub(crate) struct NodeChild {
    pub(crate) child: Child,
    pub(crate) log: Log,
    /// The first stdout line, parsed as JSON (the server's "ready" line).
    pub(crate) ready: serde_json::Value,
}

/// Runs `node ARGS...` in `dir` (node from `TESSERA_TEST_NODE` or `PATH`) and waits up to 30 s
/// for its first stdout line, which must be a JSON object. The error text contains the server's
/// stderr (so callers can look for e.g. `EADDRINUSE`).
pub(crate) async fn spawn_node(
    dir: &Path,
    args: &[String],
    label: &'static str,
) -> Result<NodeChild, String> {
    let node = std::env::var("TESSERA_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let mut cmd = Command::new(&node);
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {node:?} (is Node installed?): {e}"))?;

    let log: Log = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(forward_stderr(stderr, log.clone(), label));

    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
    let line = match first {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = child.wait().await.ok();
            // Give the stderr task a moment to collect the last lines.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(format!(
                "server exited before listening ({status:?}); stderr:\n{}",
                tail(&log)
            ));
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "server did not print its JSON line within {START_TIMEOUT:?}; stderr:\n{}",
                tail(&log)
            ));
        }
    };
    // Keep draining stdout so a stray write can never block the server.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let ready: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("bad first stdout line {line:?}: {e}"))?;
    Ok(NodeChild { child, log, ready })
}

async fn forward_stderr(stderr: impl AsyncRead + Unpin, log: Log, label: &'static str) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{label}] {line}");
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

pub(crate) fn tail(log: &Log) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// A scripted browser: cookie jar, no automatic redirects.
pub struct Browser {
    client: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a browser flow through a provider ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// The first redirect that leaves the provider's origin, as sent (not fetched): the app's
    /// callback.
    Away(String),
    /// A page of the provider itself, e.g. an error page.
    Page {
        url: String,
        status: u16,
        body: String,
    },
}

impl Landing {
    /// The redirect that left the provider; panics (naming `what`) on a page.
    #[track_caller]
    pub fn away(self, what: &str) -> String {
        match self {
            Landing::Away(raw) => raw,
            Landing::Page { url, status, body } => panic!(
                "{what}: unexpected page {status} at {url}:\n{}",
                excerpt(&body)
            ),
        }
    }
}

/// What the browser does at an interaction (login) page.
#[derive(Clone, Copy)]
enum Act<'a> {
    /// Fill in the login form as this user.
    Login(&'a str),
    /// Cancel (`…/abort`).
    Abort,
}

/// One response, seen by the browser.
enum Step {
    /// 3xx with a Location, resolved against the request URL; `raw` is the header as sent.
    Redirect { to: Url, raw: String },
    /// Anything else.
    Page {
        url: Url,
        status: StatusCode,
        body: String,
    },
}

const MAX_HOPS: usize = 30;
const DEMO_PASSWORD: &str = "demo";

/// The uid of a login page URL `…/interaction/:uid` (at the root for every flavor; a mount
/// prefix such as `/oidc` is tolerated).
fn interaction_uid(url: &Url) -> Option<&str> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    match segments.as_slice() {
        [.., "interaction", uid] if !uid.is_empty() => Some(uid),
        _ => None,
    }
}

fn excerpt(body: &str) -> &str {
    let end = body.char_indices().nth(2000).map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// The value of the first `<input ... name="NAME" value="...">` in `html`.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[start..];
    let v = rest.find("value=\"")? + "value=\"".len();
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_owned())
}

impl Browser {
    pub fn new() -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .user_agent("tessera-testkit-browser")
            .build()
            .expect("building reqwest client");
        Browser { client }
    }

    async fn step(&self, req: reqwest::RequestBuilder, url: &Url) -> Step {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("browser request to {url}: {e}"));
        let status = resp.status();
        if status.is_redirection()
            && let Some(loc) = resp.headers().get(reqwest::header::LOCATION)
        {
            let raw = loc
                .to_str()
                .unwrap_or_else(|e| panic!("non-ASCII Location from {url}: {e}"))
                .to_owned();
            let to = url
                .join(&raw)
                .unwrap_or_else(|e| panic!("bad Location {raw:?} from {url}: {e}"));
            return Step::Redirect { to, raw };
        }
        let body = resp.text().await.unwrap_or_default();
        Step::Page {
            url: url.clone(),
            status,
            body,
        }
    }

    async fn get(&self, url: &Url) -> Step {
        self.step(self.client.get(url.clone()), url).await
    }

    async fn post_form(&self, url: &Url, form: &[(&str, &str)]) -> Step {
        self.step(self.client.post(url.clone()).form(form), url)
            .await
    }

    /// Submits the login form of the interaction page `url` (showing `body`) as `user`.
    /// `logins` counts the login pages seen so far: a second one means the provider rejected the
    /// login (`what` names the flow in that panic).
    async fn submit_login(
        &self,
        url: &Url,
        body: &str,
        user: &str,
        what: &str,
        logins: &mut u32,
    ) -> Step {
        *logins += 1;
        assert!(
            *logins == 1,
            "{what} as {user} was rejected (login page shown again):\n{}",
            excerpt(body)
        );
        let action = Url::parse(&format!("{url}/login")).expect("login URL");
        self.post_form(&action, &[("login", user), ("password", DEMO_PASSWORD)])
            .await
    }

    /// Follows the authorization URL like a browser: GETs, follows redirects within the
    /// issuer, fills the login form for `user` with password `demo`, passes consent, and
    /// returns the first redirect Location that leaves the issuer (custom scheme or loopback
    /// callback) WITHOUT fetching it.
    ///
    /// Works for every [`Flavor`]: the login pages are at `/interaction/:uid` on the same
    /// origin, whatever the authorization endpoint's path (`/auth`, `/authorize`,
    /// `/oidc/auth`, `/connect/authorize`); and for the Stack fake's OAuth, whose stand-in
    /// upstream provider has its login page at `/upstream/{provider}/interaction/:uid`.
    pub async fn login(&self, authorization_url: &str, user: &str) -> String {
        self.login_reporting(authorization_url, user).await.0
    }

    /// Like [`Browser::login`], and also tells whether the login form was shown (`false` when
    /// the browser's session at the provider was still alive, e.g. to check a sign-out).
    pub async fn login_reporting(&self, authorization_url: &str, user: &str) -> (String, bool) {
        let what = format!("login as {user}");
        let (landing, logins) = self.walk(authorization_url, Act::Login(user)).await;
        (landing.away(&what), logins > 0)
    }

    /// Like [`Browser::login`] but where the flow may end on a page of the provider instead of
    /// leaving it (Stack answers a return address it does not trust with an error page).
    pub async fn follow_login(&self, authorization_url: &str, user: &str) -> Landing {
        self.walk(authorization_url, Act::Login(user)).await.0
    }

    /// Like [`Browser::login`] but cancels at the first interaction (login or consent) with
    /// `GET /interaction/:uid/abort`, and returns the final redirect that leaves the issuer
    /// (carrying `error=access_denied`).
    pub async fn deny(&self, authorization_url: &str) -> String {
        self.follow_deny(authorization_url).await.away("deny")
    }

    /// Like [`Browser::deny`] but where the flow may end on a page of the provider (Stack shows
    /// its error page after a cancelled upstream sign-in unless an `error_redirect_uri` was given).
    pub async fn follow_deny(&self, authorization_url: &str) -> Landing {
        let (landing, aborted) = self.walk(authorization_url, Act::Abort).await;
        if let Landing::Away(raw) = &landing {
            assert!(
                aborted > 0,
                "deny: left the issuer without an interaction: {raw}"
            );
        }
        landing
    }

    /// Follows `authorization_url` within its origin, doing `act` at the interaction pages;
    /// returns where it ended and how many interactions it acted on.
    async fn walk(&self, authorization_url: &str, act: Act<'_>) -> (Landing, u32) {
        let start = Url::parse(authorization_url)
            .unwrap_or_else(|e| panic!("bad authorization URL {authorization_url:?}: {e}"));
        let origin = start.origin();
        let mut next = self.get(&start).await;
        let mut acted = 0;
        for _ in 0..MAX_HOPS {
            next = match (next, act) {
                (Step::Redirect { to, raw }, _) if to.origin() != origin => {
                    return (Landing::Away(raw), acted);
                }
                (Step::Redirect { to, .. }, Act::Abort)
                    if acted == 0 && interaction_uid(&to).is_some() =>
                {
                    acted += 1;
                    let abort = Url::parse(&format!("{to}/abort")).expect("abort URL");
                    self.get(&abort).await
                }
                (Step::Redirect { to, .. }, _) => self.get(&to).await,
                (Step::Page { url, status, body }, Act::Login(user))
                    if status == StatusCode::OK && interaction_uid(&url).is_some() =>
                {
                    self.submit_login(&url, &body, user, "login", &mut acted)
                        .await
                }
                (Step::Page { url, status, body }, _) => {
                    let page = Landing::Page {
                        url: url.to_string(),
                        status: status.as_u16(),
                        body,
                    };
                    return (page, acted);
                }
            };
        }
        panic!("{authorization_url}: more than {MAX_HOPS} redirects");
    }

    /// Fetches a URL (typically the loopback callback returned by [`Browser::login`]) the way a
    /// browser would, without following redirects, and returns `(status, body)`.
    pub async fn visit(&self, url: &str) -> (u16, String) {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("visiting {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading body from {url}: {e}"));
        (status, body)
    }

    /// Completes a device-flow authorization: opens `verification_uri`, submits `user_code`,
    /// confirms, and logs in as `user`. Panics unless the provider shows its success page.
    pub async fn approve_device(&self, verification_uri: &str, user_code: &str, user: &str) {
        let device = Url::parse(verification_uri)
            .unwrap_or_else(|e| panic!("bad verification_uri {verification_uri:?}: {e}"));
        let origin = device.origin();

        let input = match self.get(&device).await {
            Step::Page { status, body, .. } if status == StatusCode::OK => body,
            Step::Page { status, body, .. } => {
                panic!("device page: {status}:\n{}", excerpt(&body))
            }
            Step::Redirect { raw, .. } => panic!("device page redirected to {raw}"),
        };
        let xsrf = hidden_input(&input, "xsrf")
            .unwrap_or_else(|| panic!("no xsrf on the device page:\n{}", excerpt(&input)));

        let confirm = match self
            .post_form(&device, &[("xsrf", &xsrf), ("user_code", user_code)])
            .await
        {
            Step::Page { body, .. } if body.contains("op.deviceConfirmForm") => body,
            Step::Page { status, body, .. } => panic!(
                "user code {user_code} not accepted ({status}):\n{}",
                excerpt(&body)
            ),
            Step::Redirect { raw, .. } => panic!("user code form redirected to {raw}"),
        };
        let xsrf = hidden_input(&confirm, "xsrf")
            .unwrap_or_else(|| panic!("no xsrf on the confirm page:\n{}", excerpt(&confirm)));

        let mut next = self
            .post_form(
                &device,
                &[
                    ("xsrf", &xsrf),
                    ("user_code", user_code),
                    ("confirm", "yes"),
                ],
            )
            .await;
        let mut logins = 0;
        for _ in 0..MAX_HOPS {
            next = match next {
                Step::Redirect { to, raw } => {
                    assert!(
                        to.origin() == origin,
                        "device flow: redirected away from the issuer to {raw}"
                    );
                    self.get(&to).await
                }
                Step::Page { url, status, body } if interaction_uid(&url).is_some() => {
                    assert!(
                        status == StatusCode::OK,
                        "device login page {status}:\n{}",
                        excerpt(&body)
                    );
                    self.submit_login(&url, &body, user, "device login", &mut logins)
                        .await
                }
                Step::Page { url, status, body } => {
                    assert!(
                        status == StatusCode::OK && body.contains("Signed in"),
                        "device flow did not end on the success page ({status} at {url}):\n{}",
                        excerpt(&body)
                    );
                    return;
                }
            };
        }
        panic!("device flow: more than {MAX_HOPS} redirects");
    }
}

/// The token set of account `account_id`'s own slot, as the keychain holds it for the data
/// directory `dir` (JSON): from the account's own entry, or from the shelf (one entry holding
/// many accounts' token sets) when `tessera.json` says it lives there. `get` reads one
/// keychain entry by its account name (`NAMESPACE/account/ID`, `NAMESPACE/shelf`).
pub fn stored_tokens(
    dir: &Path,
    account_id: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Option<serde_json::Value> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tessera.json")).ok()?).ok()?;
    let namespace = state["namespace"].as_str().expect("a namespace");
    let shelved = state["accounts"].as_array().is_some_and(|accounts| {
        accounts.iter().any(|a| {
            a["id"] == account_id
                && a["shelved"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|slot| slot == "main"))
        })
    });
    if shelved && let Some(shelf) = get(&format!("{namespace}/shelf")) {
        let shelf: serde_json::Value = serde_json::from_str(&shelf).expect("a readable shelf");
        if let Some(tokens) = shelf["slots"][account_id].get("main") {
            return Some(tokens.clone());
        }
    }
    let own = get(&format!("{namespace}/account/{account_id}"))?;
    Some(serde_json::from_str(&own).expect("a readable token set"))
}
