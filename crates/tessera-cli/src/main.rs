//! `tessera`: the command line over the core. Its interface is scripted against, so the
//! commands, flags, output shapes and exit codes are kept stable:
//! 0 ok, 1 local failure, 2 usage, 3 needs sign-in, 4 provider or network, 5 keychain.
//! Tokens go to stdout only when asked for; every message goes to stderr as one line.

mod browser;
mod output;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use output::{say, tell};
use tessera_core::agent::{Failure, RefreshRow};
use tessera_core::clock::SystemClock;
use tessera_core::http::HttpConfig;
use tessera_core::vault::KeyringStore;
use tessera_core::{
    ClientAuth, Credential, EmailLinkOutcome, Error, ErrorKind, IssuedToken, Options, OrgDiscovery,
    ProviderDraft, SecretString, SignInRequest, Tessera, TokenKind,
};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Accounts at identity providers, from the command line"
)]
struct Cli {
    /// Where account metadata is kept (secrets are always in the OS keychain)
    #[arg(long, global = true, env = "TESSERA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register, list and remove identity providers
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Sign in through the browser (or the device flow) and print the new account's id;
    /// Stack Auth signs in with --oauth (through the browser) or --email
    Login(LoginArgs),
    /// List signed-in accounts
    Accounts {
        #[arg(long)]
        json: bool,
    },
    /// Print a valid access token (or ID token), refreshing only when needed or asked
    Token(TokenArgs),
    /// Show a token's header and claims, explained, with each verification check
    Claims {
        account: String,
        /// Inspect the ID token instead of the access token
        #[arg(long)]
        id_token: bool,
        #[arg(long)]
        json: bool,
    },
    /// Refresh an account's tokens now
    /// Refresh an account's tokens now, or every account with --all
    Refresh {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        account: Option<String>,
        /// Every account, several at a time
        #[arg(long)]
        all: bool,
        /// With --all: how many at a time
        #[arg(long, default_value_t = 16, value_name = "N", requires = "all")]
        parallel: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show the provider's userinfo for an account
    Userinfo { account: String },
    /// List the organizations (teams) an account can use: which are signed in, which is current
    Orgs {
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Make an organization the current one, where the provider has one
    Switch { account: String, org: String },
    /// Serve tokens for this data directory from memory over a private socket (started on
    /// demand by `tessera token`; exits when idle)
    Agent {
        /// Exit after this many seconds without requests
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        idle: u64,
    },
    /// Sign out: revoke the refresh token, then forget the account and its keychain entry
    Logout {
        account: String,
        /// Only forget locally; do not contact the provider
        #[arg(long)]
        no_revoke: bool,
    },
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Register a provider (its discovery document is checked first)
    Add(Box<AddProviderArgs>),
    /// List registered providers
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a provider that has no accounts
    Remove { name: String },
}

#[derive(Args)]
struct AddProviderArgs {
    name: String,
    /// Provider kind: oidc, auth0, logto, stitch, stytch_b2b, stack_auth
    #[arg(long, default_value = "oidc")]
    kind: String,
    /// The OpenID issuer URL (https, or http on 127.0.0.1 / localhost)
    #[arg(long, required_unless_present_any = ["domain", "endpoint", "project_id"])]
    issuer: Option<String>,
    /// Auth0 tenant domain, e.g. example.eu.auth0.com (--kind auth0)
    #[arg(long)]
    domain: Option<String>,
    /// Logto endpoint, e.g. https://tenant.logto.app (--kind logto)
    #[arg(long)]
    endpoint: Option<String>,
    /// Client id (OpenID kinds)
    #[arg(long)]
    client_id: Option<String>,
    /// Project id (stack_auth, stytch_b2b)
    #[arg(long)]
    project_id: Option<String>,
    /// Publishable client key (stack_auth)
    #[arg(long)]
    publishable_key: Option<String>,
    /// API base URL (stack_auth, stytch_b2b)
    #[arg(long)]
    base_url: Option<String>,
    /// Public token for Stytch's frontend API (stytch_b2b)
    #[arg(long, conflicts_with = "secret_stdin")]
    public_token: Option<String>,
    /// Read the Stytch project secret from stdin to use the backend API (stytch_b2b)
    #[arg(long)]
    secret_stdin: bool,
    /// Read the client secret from standard input
    #[arg(long)]
    client_secret_stdin: bool,
    /// Client authentication: none, client_secret_basic, client_secret_post, private_key_jwt
    #[arg(long, value_name = "METHOD")]
    auth: Option<String>,
    /// PEM or JWK private key for private_key_jwt (stored in the keychain)
    #[arg(long, value_name = "FILE")]
    private_key_file: Option<PathBuf>,
    /// Key id for the client assertion when the key file has none (a PEM)
    #[arg(long, requires = "private_key_file")]
    key_id: Option<String>,
    /// Scope to request (repeatable; default: openid profile email offline_access)
    #[arg(long = "scope", value_name = "S")]
    scopes: Vec<String>,
    /// Audience parameter for the authorization request
    #[arg(long)]
    audience: Option<String>,
    /// Resource indicator (RFC 8707; repeatable)
    #[arg(long = "resource", value_name = "R")]
    resources: Vec<String>,
    /// Extra authorization parameter (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// The fixed loopback port of the redirect URL registered at the provider (stytch_b2b:
    /// http://127.0.0.1:PORT/callback, default 8714)
    #[arg(long, value_name = "PORT")]
    redirect_port: Option<String>,
}

#[derive(Args)]
struct LoginArgs {
    provider: String,
    /// Do not open a browser: print the authorization URL on stderr and wait
    #[arg(long)]
    no_browser: bool,
    /// Use the device authorization grant (RFC 8628)
    #[arg(long, conflicts_with = "no_browser")]
    device: bool,
    /// Extra authorization parameter for this sign-in (repeatable)
    #[arg(long = "param", value_name = "K=V", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Sign in to this organization (Auth0: id org_… or name; Stytch: id or slug, repeatable)
    #[arg(long)]
    org: Vec<String>,
    /// Stack Auth: sign in through the browser with this OAuth provider of the project
    /// (github, google, …)
    #[arg(long, value_name = "ID", conflicts_with_all = ["device", "email"])]
    oauth: Option<String>,
    /// Sign in with this e-mail address inside Tessera (Stack Auth: with --password-stdin,
    /// else by a mailed sign-in link that comes back to Tessera)
    #[arg(long, conflicts_with_all = ["device", "no_browser"])]
    email: Option<String>,
    /// Read the password from standard input (with --email)
    #[arg(long, requires = "email")]
    password_stdin: bool,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
}

#[derive(Args)]
struct TokenArgs {
    account: String,
    /// Refresh first if the token has fewer seconds left than this
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    min_valid: u64,
    /// Refresh even if the token is still valid
    #[arg(long)]
    refresh: bool,
    /// Print the ID token instead of the access token
    #[arg(long, conflicts_with = "org")]
    id_token: bool,
    /// A token for this organization, obtained the provider's way
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Sign-in by e-mail: with a password from stdin, or with a mailed link that comes back to a
/// loopback listener when the person clicks it — on the provider's registered port where it
/// matches redirect URLs exactly (Stytch) — then, where the link discovers organizations,
/// the ones named with --org or every active membership.
async fn email_login(
    tessera: &Tessera,
    args: &LoginArgs,
    email: &str,
) -> tessera_core::Result<tessera_core::Account> {
    if args.password_stdin {
        let password = read_stdin("password")?;
        return tessera
            .sign_in_with_password(&args.provider, email, &password)
            .await;
    }
    let receiver = tessera.loopback_receiver(&args.provider).await?;
    tessera
        .start_email_sign_in(&args.provider, email, &receiver.redirect_uri())
        .await?;
    tell!("Sent a sign-in link to {email}. Open it on this computer (Ctrl-C to cancel)…");
    let url = tokio::select! {
        url = receiver.receive() => url?,
        _ = tokio::time::sleep(Duration::from_secs(args.timeout)) => {
            return Err(Error::timeout("the sign-in link"));
        }
        _ = tokio::signal::ctrl_c() => return Err(Error::cancelled("the sign-in")),
    };
    match tessera
        .complete_email_link_for(&args.provider, &url)
        .await?
    {
        EmailLinkOutcome::SignedIn(account) => Ok(*account),
        EmailLinkOutcome::PickOrganizations(discovery) => {
            let picks = pick_organizations(&discovery, &args.org)?;
            tessera
                .choose_organizations(&discovery.flow_id, &picks)
                .await
        }
    }
}

/// The organizations to sign in to: those named with --org, else every organization the
/// person is an active member of.
fn pick_organizations(
    discovery: &OrgDiscovery,
    named: &[String],
) -> tessera_core::Result<Vec<String>> {
    for o in &discovery.organizations {
        let slug = o.slug.as_deref().unwrap_or(&o.id);
        tell!("  {slug}\t{}\t{}", o.name, o.membership);
    }
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let members: Vec<String> = discovery
        .organizations
        .iter()
        .filter(|o| o.membership == "active_member")
        .map(|o| o.id.clone())
        .collect();
    if members.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "{} is not an active member of any organization; name one with --org",
            discovery.email
        )));
    }
    Ok(members)
}

fn read_stdin(what: &str) -> tessera_core::Result<SecretString> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| Error::InvalidConfig(format!("cannot read the {what} from stdin: {e}")))?;
    let end = value.trim_end_matches(['\r', '\n']).len();
    value.truncate(end);
    if value.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "the {what} on stdin is empty"
        )));
    }
    Ok(SecretString::new(value))
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got \"{s}\"")),
    }
}

/// The static build (`scripts/build-cli`, glibc with `crt-static`) would otherwise load the
/// name-service modules `/etc/nsswitch.conf` names (systemd, mDNS, LDAP…) with `dlopen`:
/// shared libraries built against the system's own libc, which can crash a static process
/// (systemd's does, for a user `/etc/passwd` does not know). It keeps to the services built
/// into glibc: `/etc/hosts` and DNS for host names, `/etc/passwd` for users.
#[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
fn use_built_in_name_services() {
    use std::ffi::{c_char, c_int};
    unsafe extern "C" {
        fn __nss_configure_lookup(database: *const c_char, services: *const c_char) -> c_int;
    }
    for (database, services) in [
        (c"hosts", c"files dns"),
        (c"passwd", c"files"),
        (c"group", c"files"),
    ] {
        // SAFETY: first thing in `main`, before any other thread or lookup; both strings are
        // NUL-terminated and outlive the call (glibc copies what it keeps).
        unsafe { __nss_configure_lookup(database.as_ptr(), services.as_ptr()) };
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
    use_built_in_name_services();
    let cli = Cli::parse();
    let data_dir = match cli
        .data_dir
        .clone()
        .map_or_else(Tessera::default_data_dir, Ok)
    {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let agent = agent_wanted().then(|| tessera_core::agent::socket_path(&data_dir));
    if let Some(socket) = &agent
        && let Some(done) = through_agent(socket, &cli.command)
    {
        return done;
    }
    let start_agent = agent.is_some()
        && matches!(
            cli.command,
            Command::Token(_) | Command::Refresh { account: None, .. }
        );
    // One thread: every command's concurrency is waiting on the network (refresh --all, the
    // agent's connections), and keychain calls are serialised anyway. Leaving does not wait
    // for idle blocking threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&Error::Storage(format!("cannot start: {e}"))),
    };
    let outcome = runtime.block_on(run(cli, data_dir.clone()));
    runtime.shutdown_background();
    // Only from an environment where the keychain just worked: an agent inherits it.
    if start_agent && outcome.is_ok() {
        spawn_agent(&data_dir);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `command` answered by the agent of `socket`, if it is one the agent answers (`token`,
/// `refresh --all`) and an agent is there to answer it.
fn through_agent(socket: &std::path::Path, command: &Command) -> Option<ExitCode> {
    use tessera_core::agent::{Answer, RefreshAllRequest, Request};
    match command {
        Command::Token(args) => {
            let answer = tessera_core::agent::ask(socket, &Request::Token(token_request(args)))?;
            Some(print_answer(answer, args))
        }
        Command::Refresh {
            account: None,
            parallel,
            json,
            ..
        } => {
            let request = Request::RefreshAll {
                refresh_all: RefreshAllRequest {
                    parallel: *parallel,
                },
            };
            // As long as many refreshes at slow providers take, under their own timeouts.
            let within = Duration::from_secs(3600);
            Some(
                match tessera_core::agent::ask_within(socket, &request, within)? {
                    Answer::Refreshed { rows } => match output::refresh_all(&rows, *json) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => fail(&e),
                    },
                    Answer::Failed(failure) => failed(&failure),
                    Answer::Token { .. } => return None,
                },
            )
        }
        _ => None,
    }
}

/// Whether `tessera token` and `refresh --all` go through (and start) the agent: unless
/// `TESSERA_AGENT=off`.
fn agent_wanted() -> bool {
    std::env::var("TESSERA_AGENT").map_or(true, |v| v != "off")
}

fn token_request(args: &TokenArgs) -> tessera_core::agent::TokenRequest {
    tessera_core::agent::TokenRequest {
        account: args.account.clone(),
        org: args.org.clone(),
        min_valid: args.min_valid,
        force: args.refresh,
        id_token: args.id_token,
    }
}

fn print_answer(answer: tessera_core::agent::Answer, args: &TokenArgs) -> ExitCode {
    use tessera_core::agent::Answer;
    match answer {
        Answer::Token {
            account_id,
            token,
            expires_at,
            refreshed,
        } => {
            let issued = IssuedToken {
                token: SecretString::new(token),
                expires_at,
                refreshed,
            };
            match output::token(&account_id, &issued, args.id_token, args.json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Answer::Failed(failure) => failed(&failure),
        Answer::Refreshed { .. } => failed(&Failure {
            code: "agent".into(),
            message: "the agent answered something else than a token".into(),
            kind: "local".into(),
        }),
    }
}

/// An error the agent answered with, as [`fail`] says it.
fn failed(failure: &Failure) -> ExitCode {
    tell!("tessera: {} [{}]", failure.message, failure.code);
    ExitCode::from(exit_code(failure.kind()))
}

/// Starts an agent for the data directory in the background, detached from this process
/// and its terminal; it serves the next `tessera token` (or leaves at once if one runs).
fn spawn_agent(data_dir: &std::path::Path) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let _ = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("agent")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

fn fail(e: &Error) -> ExitCode {
    tell!("tessera: {e} [{}]", e.code());
    ExitCode::from(exit_code(e.kind()))
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => 2,
        ErrorKind::NeedsSignIn => 3,
        ErrorKind::Provider => 4,
        ErrorKind::Keychain => 5,
        ErrorKind::Local => 1,
    }
}

async fn run(cli: Cli, data_dir: PathBuf) -> tessera_core::Result<()> {
    let tessera = Tessera::open(Options {
        data_dir: data_dir.clone(),
        store: Arc::new(KeyringStore::new()),
        clock: Arc::new(SystemClock),
        http: HttpConfig::default(),
    })?;
    match cli.command {
        Command::Provider(ProviderCommand::Add(args)) => add_provider(&tessera, *args).await,
        Command::Provider(ProviderCommand::List { json }) => {
            output::providers(&tessera.providers()?, json)
        }
        Command::Provider(ProviderCommand::Remove { name }) => {
            tessera.remove_provider(&name).await?;
            tell!("Removed provider \"{name}\".");
            Ok(())
        }
        Command::Login(args) => login(&tessera, args).await,
        Command::Accounts { json } => output::accounts(&tessera.accounts()?, json),
        Command::Token(args) => {
            let (account_id, issued) = tessera.token(&token_request(&args)).await?;
            output::token(&account_id, &issued, args.id_token, args.json)
        }
        Command::Agent { idle } => {
            let socket = tessera_core::agent::socket_path(&data_dir);
            tessera_core::agent::serve(Arc::new(tessera), &socket, Duration::from_secs(idle))
                .await
                .map(|_| ())
        }
        Command::Claims {
            account,
            id_token,
            json,
        } => {
            let kind = if id_token {
                TokenKind::IdToken
            } else {
                TokenKind::AccessToken
            };
            output::claims(&tessera.claims(&account, kind).await?, json)
        }
        Command::Refresh {
            account: Some(account),
            json,
            ..
        } => output::refresh(&tessera.refresh(&account).await?, json),
        Command::Refresh {
            account: None,
            parallel,
            json,
            ..
        } => {
            let rows: Vec<RefreshRow> = tessera
                .refresh_all(parallel)
                .await?
                .iter()
                .map(|(id, outcome)| RefreshRow::of(id, outcome))
                .collect();
            output::refresh_all(&rows, json)
        }
        Command::Userinfo { account } => output::json(&tessera.userinfo(&account).await?),
        Command::Orgs { account, json } => {
            output::orgs(&tessera.organizations(&account).await?, json)
        }
        Command::Switch { account, org } => {
            let account = tessera.switch_org(&account, &org).await?;
            tell!(
                "{} now uses organization {}.",
                account.id,
                account.current_org.unwrap_or_default()
            );
            Ok(())
        }
        Command::Logout { account, no_revoke } => {
            let out = tessera.sign_out(&account, !no_revoke).await?;
            let how = if out.revoked {
                "revoked the refresh token and "
            } else {
                ""
            };
            tell!(
                "Signed out of {}: {how}removed it from this computer.",
                out.account_id
            );
            if let Some(url) = out.logout_url {
                tell!("To also end your session in the browser, open: {url}");
            }
            Ok(())
        }
    }
}

async fn add_provider(tessera: &Tessera, args: AddProviderArgs) -> tessera_core::Result<()> {
    let credential = if let Some(path) = &args.private_key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        Some(Credential::PrivateKey(SecretString::new(text)))
    } else if args.client_secret_stdin {
        Some(Credential::Secret(read_stdin("client secret")?))
    } else if args.secret_stdin {
        Some(Credential::Secret(read_stdin("project secret")?))
    } else {
        None
    };
    let draft = ProviderDraft {
        kind: args.kind.parse()?,
        name: args.name,
        issuer: args.issuer,
        domain: args.domain,
        endpoint: args.endpoint,
        client_id: args.client_id.or_else(|| args.project_id.clone()),
        project_id: args.project_id,
        client_key: args.publishable_key.or(args.public_token),
        base_url: args.base_url,
        client_auth: args.auth.as_deref().map(ClientAuth::parse).transpose()?,
        credential,
        key_id: args.key_id,
        scopes: args.scopes,
        audience: args.audience,
        resources: args.resources,
        params: args.params,
        redirect_mode: None,
        redirect_port: args.redirect_port,
    };
    let saved = tessera.add_provider_draft(draft).await?;
    tell!("Added provider \"{}\" ({}).", saved.name, saved.issuer);
    let register = saved.redirect_urls();
    if !register.is_empty() {
        tell!(
            "Register these redirect URLs at the provider, exactly: {}",
            register.join(" ")
        );
    }
    Ok(())
}

async fn login(tessera: &Tessera, args: LoginArgs) -> tessera_core::Result<()> {
    let cancel = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let account = if let Some(email) = &args.email {
        email_login(tessera, &args, email).await?
    } else if args.device {
        let device = tessera.start_device_sign_in(&args.provider).await?;
        let a = &device.authorization;
        tell!(
            "To sign in, visit {} and enter the code {}",
            a.verification_uri,
            a.user_code
        );
        if let Some(complete) = &a.verification_uri_complete {
            tell!("Or open: {complete}");
        }
        tell!("Waiting for approval (Ctrl-C to cancel)…");
        tessera.finish_device_sign_in(&device, cancel).await?
    } else {
        let no_browser = args.no_browser;
        let on_start = |start: &tessera_core::SignInStart| {
            if no_browser {
                tell!("{}", start.authorization_url);
                return;
            }
            match browser::open(&start.authorization_url) {
                Ok(()) => tell!("Opened your browser to sign in to {}.", start.provider),
                Err(e) => tell!("Could not open a browser ({e})."),
            }
            tell!(
                "If it did not open, visit:\n  {}\nWaiting for the sign-in (Ctrl-C to cancel)…",
                start.authorization_url
            );
        };
        let params = tessera.sign_in_params(&SignInRequest {
            provider: args.provider.clone(),
            org: args.org.last().cloned(),
            oauth_provider: args.oauth.clone(),
            someone_else: false,
            params: args.params.clone(),
        })?;
        let timeout = Duration::from_secs(args.timeout);
        tessera
            .sign_in_with_loopback(&args.provider, &params, on_start, timeout, cancel)
            .await?
    };
    tell!(
        "Signed in as {} at {}.",
        account.email.as_deref().unwrap_or(&account.subject),
        account.provider
    );
    if let Some(restriction) = account.restriction {
        tell!(
            "The provider restricts this account: {}.",
            restriction.hint()
        );
    }
    say!("{}", account.id);
    Ok(())
}
