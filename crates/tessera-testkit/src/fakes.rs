//! Stand-ins for the two closed cloud APIs, started from Rust tests: [`StytchFake`]
//! (`tests/fakes/stytch.mjs`, Stytch B2B) and [`StackFake`] (`tests/fakes/stack.mjs`, Stack Auth).
//!
//! Each is a Node child process on `127.0.0.1` (no npm dependencies), killed on drop, with a fixed
//! fixture and test hooks under `/__test/`: the outbox (the person's mailbox), a clock the test can
//! move forward, and the log of what the client sent. What the fakes emulate, and what they
//! deliberately do not, is in `tests/fakes/README.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;

use crate::{Log, NodeChild, repo_dir, spawn_node, tail, test_client};

/// `<repo>/tests/fakes`.
pub fn fakes_dir() -> PathBuf {
    repo_dir().join("tests").join("fakes")
}

/// How long [`StytchFake::latest_link_to`] / [`StackFake::latest_code_to`] wait for mail.
const MAIL_WAIT: Duration = Duration::from_secs(10);

/// A running fake: the child process plus the plumbing for its test hooks.
struct Process {
    base_url: String,
    port: u16,
    /// The ready line the fake printed.
    ready: Value,
    label: &'static str,
    child: Child,
    log: Log,
    http: reqwest::Client,
}

impl Process {
    /// Starts `node <script> --port PORT ARGS...`; with a fixed port, retries while the port is
    /// still held by a process that was just killed.
    async fn start(script: &str, port: u16, extra: &[String], label: &'static str) -> Process {
        let mut args = vec![script.to_owned(), "--port".to_owned(), port.to_string()];
        args.extend_from_slice(extra);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match spawn_node(&fakes_dir(), &args, label).await {
                Ok(NodeChild { child, log, ready }) => {
                    let base_url = ready["base_url"]
                        .as_str()
                        .unwrap_or_else(|| panic!("tests/fakes/{script}: no base_url in {ready}"))
                        .to_owned();
                    let port = ready["port"]
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or_else(|| panic!("tests/fakes/{script}: no port in {ready}"));
                    return Process {
                        base_url,
                        port,
                        ready,
                        label,
                        child,
                        log,
                        http: test_client(),
                    };
                }
                Err(e) if port != 0 && attempt < 20 && e.contains("EADDRINUSE") => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("starting tests/fakes/{script}: {e}"),
            }
        }
    }

    /// A string field of the ready line.
    fn ready_str(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("[{}] no {name} in {}", self.label, self.ready))
            .to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    async fn hook(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("[{}] {method} {path}: {e}", self.label));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "[{}] {method} {path}: {status} {text}\nstderr:\n{}",
            self.label,
            tail(&self.log)
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("[{}] {method} {path}: not JSON ({e}): {text}", self.label))
    }

    /// A test hook that answers with a JSON array (`what` names it in the panic otherwise).
    async fn hook_list(&self, path: &str, what: &str) -> Vec<Value> {
        match self.hook(reqwest::Method::GET, path, None).await {
            Value::Array(items) => items,
            other => panic!("[{}] {what} is not an array: {other}", self.label),
        }
    }

    async fn outbox(&self) -> Vec<Value> {
        self.hook_list("/__test/outbox", "outbox").await
    }

    /// The outbox entries addressed to `email` (case-insensitive), oldest first.
    async fn mails_to(&self, email: &str) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_str()
                    .is_some_and(|to| to.eq_ignore_ascii_case(email))
            })
            .collect()
    }

    /// The mail to `email` number `index` (0-based); waits up to 10 s for it to arrive.
    async fn wait_mail(&self, email: &str, index: usize) -> Value {
        let deadline = tokio::time::Instant::now() + MAIL_WAIT;
        loop {
            let mut mails = self.mails_to(email).await;
            if mails.len() > index {
                return mails.swap_remove(index);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{}] no mail #{} to {email} within {MAIL_WAIT:?}; outbox: {}",
                self.label,
                index + 1,
                Value::Array(self.outbox().await)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The newest mail to `email`; waits up to 10 s for one.
    async fn latest_to(&self, email: &str) -> Value {
        let mut mails = self.mails_to(email).await;
        match mails.pop() {
            Some(mail) => mail,
            None => self.wait_mail(email, 0).await,
        }
    }

    /// The string `field` of a mail.
    fn mail_field(&self, mail: &Value, field: &str) -> String {
        mail[field]
            .as_str()
            .unwrap_or_else(|| panic!("[{}] mail without {field}: {mail}", self.label))
            .to_owned()
    }

    /// The string `field` of the newest mail to `email`; waits up to 10 s for one.
    async fn latest_field_to(&self, email: &str, field: &str) -> String {
        let mail = self.latest_to(email).await;
        self.mail_field(&mail, field)
    }

    /// The string `field` of the mail to `email` number `index` (0-based); waits up to 10 s.
    async fn nth_field_to(&self, email: &str, index: usize, field: &str) -> String {
        let mail = self.wait_mail(email, index).await;
        self.mail_field(&mail, field)
    }

    async fn advance_clock(&self, secs: u64) {
        self.hook(
            reqwest::Method::POST,
            "/__test/clock",
            Some(json!({ "advance_seconds": secs })),
        )
        .await;
    }

    async fn requests(&self) -> Vec<Value> {
        self.hook_list("/__test/requests", "request log").await
    }

    async fn clear_requests(&self) {
        self.hook(reqwest::Method::DELETE, "/__test/requests", None)
            .await;
    }

    async fn rotate_signing_key(&self) -> String {
        let v = self
            .hook(
                reqwest::Method::POST,
                "/__test/rotate_keys",
                Some(json!({})),
            )
            .await;
        v["kid"]
            .as_str()
            .unwrap_or_else(|| panic!("[{}] rotate_keys: no kid in {v}", self.label))
            .to_owned()
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The test-hook methods both fakes have, forwarded to their [`Process`]. The invocation lists
/// the methods in order, each with the documentation that differs between the fakes; the hook
/// that waits for the next mail is named after `mail_count_to` so the docs can link to it.
macro_rules! forward_test_hooks {
    (
        $(#[$url:meta])* url;
        $(#[$outbox:meta])* outbox;
        mail_count_to => $next:ident;
        $(#[$clock:meta])* advance_clock;
        $(#[$requests:meta])* requests;
        $(#[$rotate:meta])* rotate_signing_key;
    ) => {
        $(#[$url])*
        pub fn url(&self, path: &str) -> String {
            self.process.url(path)
        }

        $(#[$outbox])*
        pub async fn outbox(&self) -> Vec<Value> {
            self.process.outbox().await
        }

        #[doc = concat!(
            "How many mails `email` has received so far (to pass to [`Self::",
            stringify!($next),
            "`])."
        )]
        pub async fn mail_count_to(&self, email: &str) -> usize {
            self.process.mails_to(email).await.len()
        }

        $(#[$clock])*
        pub async fn advance_clock(&self, secs: u64) {
            self.process.advance_clock(secs).await;
        }

        $(#[$requests])*
        pub async fn requests(&self) -> Vec<Value> {
            self.process.requests().await
        }

        /// Empties the request log.
        pub async fn clear_requests(&self) {
            self.process.clear_requests().await;
        }

        $(#[$rotate])*
        pub async fn rotate_signing_key(&self) -> String {
            self.process.rotate_signing_key().await
        }

        /// The last lines the fake wrote to stderr (for assertion messages).
        pub fn stderr_tail(&self) -> String {
            tail(&self.process.log)
        }

        /// Stops the fake now (it is also killed on drop).
        pub async fn stop(&mut self) {
            self.process.kill().await;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Stytch B2B

/// How to start [`StytchFake`]. The defaults describe a project that registered
/// `dev.tessera:/callback` as its (default) discovery redirect URL and authorized the app
/// `dev.tessera` in its SDK configuration, on Stytch's own domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StytchFakeOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The project's registered discovery redirect URLs, matched exactly (scheme, host, port,
    /// path, query); the first is the default for a send without `discovery_redirect_url`. At
    /// least one.
    pub redirect_urls: Vec<String>,
    /// Serve as the project's custom domain: session JWTs carry `iss` = the fake's base URL
    /// instead of `stytch.com/{project_id}`.
    pub custom_domain: bool,
    /// Bundle ids the SDK configuration authorizes; an SDK caller without an origin must name one
    /// as `app.identifier` in `X-SDK-Client`.
    pub authorized_apps: Vec<String>,
    /// Origins (`https://app.example.com`) the SDK configuration authorizes; an SDK caller with
    /// `X-SDK-Parent-Host` or `Origin` must come from one.
    pub authorized_domains: Vec<String>,
}

impl Default for StytchFakeOptions {
    fn default() -> Self {
        StytchFakeOptions {
            port: 0,
            redirect_urls: vec!["dev.tessera:/callback".to_owned()],
            custom_domain: false,
            authorized_apps: vec!["dev.tessera".to_owned()],
            authorized_domains: Vec::new(),
        }
    }
}

impl StytchFakeOptions {
    fn args(&self) -> Vec<String> {
        assert!(
            !self.redirect_urls.is_empty(),
            "StytchFakeOptions: a project needs at least one redirect URL"
        );
        let mut args = Vec::new();
        list_args(&mut args, "--redirect-url", &self.redirect_urls);
        list_args(&mut args, "--authorized-app", &self.authorized_apps);
        list_args(&mut args, "--authorized-domain", &self.authorized_domains);
        if self.custom_domain {
            args.push("--custom-domain".to_owned());
        }
        args
    }
}

/// `--flag=` for an empty list, else `--flag=V` for each value.
fn list_args(args: &mut Vec<String>, flag: &str, values: &[String]) {
    if values.is_empty() {
        args.push(format!("{flag}="));
    }
    args.extend(values.iter().map(|v| format!("{flag}={v}")));
}

/// A running `tests/fakes/stytch.mjs`: Stytch B2B's backend API (`/v1/b2b/…`, Basic
/// `project_id:secret`) and frontend-SDK API (`/sdk/v1/b2b/…`, Basic
/// `public_token:(public_token|session_token)`). Killed on drop.
///
/// Fixture: alice@example.com is an active member of `acme` and `globex` (which requires MFA) and
/// may join `initech` by email domain; bob@example.com is a member of `acme` only. Registered
/// redirect URLs, custom domain and SDK authorizations: [`StytchFakeOptions`]. SDK calls need
/// `X-SDK-Client` as the official SDKs send it.
pub struct StytchFake {
    /// `http://127.0.0.1:PORT`, no trailing slash; the API is at `/v1/…` and `/sdk/v1/…`.
    pub base_url: String,
    pub port: u16,
    /// `project-test-11111111-1111-1111-1111-111111111111`.
    pub project_id: String,
    /// `public-token-test-fake`.
    pub public_token: String,
    /// `secret-test-fake`.
    pub secret: String,
    /// The session JWTs' `iss`: `stytch.com/{project_id}`, or [`StytchFake::base_url`] as a
    /// custom domain.
    pub issuer: String,
    process: Process,
}

impl StytchFake {
    /// Starts the fake on a random port and waits (up to 30 s) until it listens.
    pub async fn start() -> StytchFake {
        Self::start_with(StytchFakeOptions::default()).await
    }

    pub async fn start_with(opts: StytchFakeOptions) -> StytchFake {
        let process = Process::start("stytch.mjs", opts.port, &opts.args(), "stytch").await;
        StytchFake {
            base_url: process.base_url.clone(),
            port: process.port,
            project_id: process.ready_str("project_id"),
            public_token: process.ready_str("public_token"),
            secret: process.ready_str("secret"),
            issuer: process.ready_str("issuer"),
            process,
        }
    }

    forward_test_hooks! {
        /// `base_url + path`, e.g. `fake.url("/v1/b2b/sessions/authenticate")`.
        url;
        /// Every "email" sent so far: `{to, kind: "discovery_magic_link", link, token,
        /// redirect_url, at}`, oldest first.
        outbox;
        mail_count_to => next_link_to;
        /// Moves the fake's clock forward (expires magic links, intermediate sessions, sessions,
        /// JWTs).
        advance_clock;
        /// What clients sent, oldest first: `{method, path, query, family: "backend"|"sdk"|null,
        /// auth: {scheme, username, password: "secret"|"public_token"|"session_token"|"other"},
        /// headers: {content-type, x-sdk-client: {sdk, app} (the identifiers) | "malformed" |
        /// null, x-sdk-parent-host, origin}, body_fields, status, error_type?, at}`. Secrets and
        /// token values are never logged.
        requests;
        /// Adds a new RS256 signing key that signs from now on; the old one stays in the JWKS.
        /// Returns the new `kid`.
        rotate_signing_key;
    }

    /// The link of the newest discovery magic link sent to `email`
    /// (`{discovery_redirect_url}?stytch_token_type=discovery&token=…`). Waits up to 10 s for one.
    pub async fn latest_link_to(&self, email: &str) -> String {
        self.process.latest_field_to(email, "link").await
    }

    /// The link of the first mail to `email` after the first `seen` ones: call
    /// [`StytchFake::mail_count_to`] before triggering the send, then this. Waits up to 10 s.
    pub async fn next_link_to(&self, email: &str, seen: usize) -> String {
        self.process.nth_field_to(email, seen, "link").await
    }
}

// ---------------------------------------------------------------------------------------------
// Stack Auth

/// How to start [`StackFake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFakeOptions {
    /// Access-token lifetime in seconds (Stack's default: 600).
    pub access_ttl: u64,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The project requires a verified e-mail (`onboarding.requireEmailVerification`): users
    /// whose e-mail is not verified (erin@example.com) get restricted tokens (`iss
    /// …/projects-restricted-users/{id}`, `aud {id}:restricted`) that later calls only accept with
    /// `x-stack-allow-restricted-user: true`.
    pub require_email_verification: bool,
    /// A sign-up rule rejects OAuth sign-ups (new users) whose bot challenge did not pass
    /// (`SIGN_UP_REJECTED` at the callback).
    pub bot_challenge: bool,
}

impl Default for StackFakeOptions {
    fn default() -> Self {
        StackFakeOptions {
            access_ttl: 600,
            port: 0,
            require_email_verification: false,
            bot_challenge: false,
        }
    }
}

impl StackFakeOptions {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--access-ttl".to_owned(), self.access_ttl.to_string()];
        if self.require_email_verification {
            args.push("--require-email-verification".to_owned());
        }
        if self.bot_challenge {
            args.push("--bot-challenge".to_owned());
        }
        args
    }
}

/// A running `tests/fakes/stack.mjs`: Stack Auth's client API under `{base_url}/api/v1`.
/// Killed on drop.
///
/// Fixture (password `demo` for everyone): alice@example.com (teams `Team Acme`, `Team Globex`;
/// selected: Team Acme), bob@example.com (`Team Acme`), carol@example.com (`Team Acme`, TOTP
/// second factor: password sign-in answers `MULTI_FACTOR_AUTHENTICATION_REQUIRED`),
/// erin@example.com (`Team Acme`, e-mail not verified).
///
/// OAuth goes as at Stack: `/auth/oauth/authorize/{provider}` answers 307 to a stand-in
/// upstream provider served by the fake (`/upstream/{provider}/…`), which comes back to Stack's
/// callback; only there is the return address checked, then the browser goes to the client's
/// `redirect_uri`. Follow it with [`crate::Browser`].
pub struct StackFake {
    /// `http://127.0.0.1:PORT`, no trailing slash; the API is at `/api/v1/…`.
    pub base_url: String,
    pub port: u16,
    /// `11111111-2222-3333-4444-555555555555`.
    pub project_id: String,
    /// `pck_fake`.
    pub publishable_key: String,
    process: Process,
}

/// Ids of the Stack fixture.
pub mod stack_fixture {
    pub const ALICE_ID: &str = "a11ce000-0000-4000-8000-000000000001";
    pub const BOB_ID: &str = "b0b00000-0000-4000-8000-000000000002";
    pub const CAROL_ID: &str = "ca401000-0000-4000-8000-000000000003";
    /// erin@example.com, whose e-mail is not verified.
    pub const ERIN_ID: &str = "e414e000-0000-4000-8000-000000000005";
    pub const TEAM_ACME: &str = "acce0000-0000-4000-8000-000000000001";
    pub const TEAM_GLOBEX: &str = "610be000-0000-4000-8000-000000000002";
}

/// Ids of the Stytch fixture.
pub mod stytch_fixture {
    pub const ORG_ACME: &str = "organization-test-a0000000-0000-4000-8000-000000000001";
    pub const ORG_GLOBEX: &str = "organization-test-b0000000-0000-4000-8000-000000000002";
    pub const ORG_INITECH: &str = "organization-test-c0000000-0000-4000-8000-000000000003";
    pub const ALICE_ACME: &str = "member-test-a1100000-0000-4000-8000-00000000000a";
    pub const ALICE_GLOBEX: &str = "member-test-a1200000-0000-4000-8000-00000000000a";
    pub const BOB_ACME: &str = "member-test-b0100000-0000-4000-8000-00000000000b";
}

impl StackFake {
    /// Starts the fake on a random port with 10-minute access tokens.
    pub async fn start() -> StackFake {
        Self::start_with(StackFakeOptions::default()).await
    }

    pub async fn start_with(opts: StackFakeOptions) -> StackFake {
        let process = Process::start("stack.mjs", opts.port, &opts.args(), "stack").await;
        StackFake {
            base_url: process.base_url.clone(),
            port: process.port,
            project_id: process.ready_str("project_id"),
            publishable_key: process.ready_str("publishable_key"),
            process,
        }
    }

    forward_test_hooks! {
        /// `base_url + path`, e.g. `fake.url("/api/v1/users/me")`.
        url;
        /// Every sign-in code mailed so far: `{to, kind: "otp_sign_in", link, code, otp, nonce,
        /// at}` (`code` = the 45-character code, `otp` = its first 6 characters upper-cased as
        /// the mail shows them, `nonce` = the rest, as `send-sign-in-code` returned it), oldest
        /// first.
        outbox;
        mail_count_to => next_code_to;
        /// Moves the fake's clock forward (expires access tokens, codes, refresh tokens).
        advance_clock;
        /// What clients sent, oldest first: `{method, path, query, headers: {x-stack-* (token
        /// headers only as "present"), content-type}, body_fields, status, known_error?,
        /// oauth_error?, at}`.
        requests;
        /// Adds a new ES256 signing key that signs from now on; the old one stays in the JWKS.
        /// Returns the new `kid`.
        rotate_signing_key;
    }

    /// `base_url + "/api/v1" + path`, e.g. `fake.api("/users/me")`.
    pub fn api(&self, path: &str) -> String {
        self.process.url(&format!("/api/v1{path}"))
    }

    /// The full 45-character code of the newest mail to `email`, ready for
    /// `POST /auth/otp/sign-in {code}`. Waits up to 10 s for one.
    pub async fn latest_code_to(&self, email: &str) -> String {
        self.process.latest_field_to(email, "code").await
    }

    /// The link (`callback_url?code=…`) of the newest mail to `email`.
    pub async fn latest_link_to(&self, email: &str) -> String {
        self.process.latest_field_to(email, "link").await
    }

    /// The six characters the newest mail to `email` shows for typing.
    pub async fn latest_otp_to(&self, email: &str) -> String {
        self.process.latest_field_to(email, "otp").await
    }

    /// The 45-character code of the first mail to `email` after the first `seen` ones: call
    /// [`StackFake::mail_count_to`] before triggering the send, then this. Waits up to 10 s.
    pub async fn next_code_to(&self, email: &str, seen: usize) -> String {
        self.process.nth_field_to(email, seen, "code").await
    }

    /// Whom the browser is signed in as at the stand-in upstream OAuth provider from now on
    /// (alice@example.com until changed): it sends the browser straight back to Stack with that
    /// account, as a provider does for an app the person approved before. An address Stack does
    /// not know signs up.
    pub async fn set_oauth_user(&self, email: &str) {
        self.oauth_user(json!(email)).await;
    }

    /// From now on the stand-in upstream provider shows its login page (`…/interaction/{uid}`,
    /// any e-mail with password `demo`, or cancel), which [`crate::Browser::login`] fills in.
    pub async fn forget_oauth_user(&self) {
        self.oauth_user(Value::Null).await;
    }

    async fn oauth_user(&self, email: Value) {
        self.process
            .hook(
                reqwest::Method::POST,
                "/__test/oauth_user",
                Some(json!({ "email": email })),
            )
            .await;
    }

    /// Marks the e-mail of `email`'s user verified (the person followed Stack's verification
    /// link): with [`StackFakeOptions::require_email_verification`], the next refresh gives an
    /// unrestricted token.
    pub async fn verify_email(&self, email: &str) {
        self.process
            .hook(
                reqwest::Method::POST,
                "/__test/verify_email",
                Some(json!({ "email": email })),
            )
            .await;
    }

    /// Holds the next request to `path` (its full path, e.g. `/api/v1/auth/password/sign-in`)
    /// before the fake sees it, until [`Self::release`]: a provider that does not answer.
    pub async fn stall(&self, path: &str) {
        let body = Some(json!({ "path": path }));
        self.process
            .hook(reqwest::Method::POST, "/__test/stall", body)
            .await;
    }

    /// Waits until a request to `path` is held by [`Self::stall`] (panics after 60 s).
    pub async fn held(&self, path: &str) {
        let path = format!(
            "/__test/stalled?path={}",
            url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
        );
        self.process.hook(reqwest::Method::GET, &path, None).await;
    }

    /// Lets the request held on `path` go on.
    pub async fn release(&self, path: &str) {
        let body = Some(json!({ "path": path }));
        self.process
            .hook(reqwest::Method::POST, "/__test/release", body)
            .await;
    }

    /// The current TOTP code of a user with a second factor (carol@example.com).
    pub async fn totp(&self, email: &str) -> String {
        let path = format!(
            "/__test/totp?email={}",
            url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
        );
        let v = self.process.hook(reqwest::Method::GET, &path, None).await;
        v["totp"]
            .as_str()
            .unwrap_or_else(|| panic!("[stack] no totp in {v}"))
            .to_owned()
    }

    /// Approves a waiting CLI login (`POST /auth/cli`'s `login_code`) as `email`, the way the
    /// customer's confirm page would.
    pub async fn approve_cli(&self, login_code: &str, email: &str) {
        self.process
            .hook(
                reqwest::Method::POST,
                "/__test/cli/approve",
                Some(json!({ "login_code": login_code, "email": email })),
            )
            .await;
    }
}
