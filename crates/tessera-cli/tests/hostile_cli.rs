//! The `tessera` binary against hostile arguments, a damaged `tessera.json`, an absent Secret
//! Service and provider text with terminal escapes (issue 8). Each case: the documented exit
//! status and machine code, no panic, nothing on stdout, and nothing stored changed — the data
//! directory and this data directory's entries in the real Secret Service (read with
//! `secret-tool`), before and after.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tessera_testkit::{Answer, ScriptedIdp};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

mod common;
use common::{Cli, assert_keychain_available, text};

/// Files of the data directory (without lock files and `cache/`) and its keychain entries.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    files: BTreeMap<PathBuf, Vec<u8>>,
    keychain: BTreeMap<String, String>,
}

fn files(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let first = rel.components().next().unwrap().as_os_str().to_owned();
        if ["cache", "locks", "tessera.lock"]
            .iter()
            .any(|s| first == *s)
        {
            continue;
        }
        if path.is_dir() {
            files(&path, root, out);
        } else {
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

/// The Secret Service entries of namespace `ns` (`secret-tool search` names them on stderr).
async fn keychain(ns: &str) -> BTreeMap<String, String> {
    let found = Command::new("secret-tool")
        .args(["search", "--all", "service", "dev.tessera"])
        .output()
        .await
        .unwrap();
    let prefix = format!("{ns}/");
    let mut entries = BTreeMap::new();
    for user in text(&found.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("attribute.username = "))
        .filter(|u| u.starts_with(&prefix))
    {
        let value = Command::new("secret-tool")
            .args(["lookup", "service", "dev.tessera", "username", user])
            .output()
            .await
            .unwrap();
        entries.insert(user.to_string(), text(&value.stdout));
    }
    entries
}

async fn stored(cli: &Cli) -> Stored {
    let mut f = BTreeMap::new();
    files(cli.dir.path(), cli.dir.path(), &mut f);
    let ns = std::fs::read(cli.dir.path().join("tessera.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["namespace"].as_str().map(String::from));
    Stored {
        files: f,
        keychain: match ns {
            Some(ns) => keychain(&ns).await,
            None => BTreeMap::new(),
        },
    }
}

/// A data directory with the scripted provider registered as `p` and alice signed in.
struct Env {
    idp: ScriptedIdp,
    cli: Cli,
    id: String,
}

async fn env() -> Env {
    assert_keychain_available();
    let idp = ScriptedIdp::start().await;
    let cli = Cli::default();
    cli.ok(&[
        "provider",
        "add",
        "p",
        "--issuer",
        &idp.issuer,
        "--client-id",
        "tessera-public",
    ])
    .await;
    let (child, mut stderr) = cli.spawn(&["login", "p", "--no-browser"]);
    let url = stderr.next_line().await.unwrap().unwrap();
    let callback = idp.authorize(&url, "alice");
    reqwest::get(&callback).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let id = text(&out.stdout).trim().to_string();
    Env { idp, cli, id }
}

async fn run(cli: &Cli, args: &[OsString], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut c = cli.command(&[]);
    c.args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("tessera gave up in time")
        .unwrap()
}

/// What a case must end with: the exit status and, for the core's errors, the machine code
/// at the end of the one line on stderr (argument errors are clap's own, without one).
fn judge(case: &str, out: &Output, status: i32, code: &str, failures: &mut Vec<String>) {
    let err = text(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.code() != Some(status) {
        wrong.push(format!("exit {:?}, not {status}", out.status.code()));
    }
    if !code.is_empty() && !err.trim_end().ends_with(&format!("[{code}]")) {
        wrong.push(format!("not [{code}]"));
    }
    if err.contains("panicked") {
        wrong.push("a panic".into());
    }
    if !out.stdout.is_empty() {
        wrong.push(format!("stdout {:?}", text(&out.stdout)));
    }
    if !wrong.is_empty() {
        let first: String = err.lines().next().unwrap_or("").chars().take(200).collect();
        failures.push(format!("{case}: {} (stderr: {first})", wrong.join(", ")));
    }
}

const USAGE: i32 = 2;
const PROVIDER: i32 = 4;

/// A case: its name, the arguments, standard input, the exit status and the machine code.
type Case = (
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    i32,
    &'static str,
);

/// `{id}` is alice's account id, `{issuer}` the provider's, `{big}` 100 KB of letters,
/// `{key}` a file of garbage, `{huge_key}` a 5 MB one.
#[rustfmt::skip]
const CASES: &[Case] = &[
    ("no command", &[], None, USAGE, ""),
    ("an unknown command", &["bogus"], None, USAGE, ""),
    ("token without an account", &["token"], None, USAGE, ""),
    ("a negative --min-valid", &["token", "{id}", "--min-valid", "-1"], None, USAGE, ""),
    ("--min-valid past u64", &["token", "{id}", "--min-valid", "18446744073709551616"], None, USAGE, ""),
    ("--min-valid a word", &["token", "{id}", "--min-valid", "abc"], None, USAGE, ""),
    ("--id-token with --org", &["token", "{id}", "--id-token", "--org", "x"], None, USAGE, ""),
    ("an extra argument", &["accounts", "--json", "extra"], None, USAGE, ""),
    ("--data-dir without a value", &["accounts", "--data-dir"], None, USAGE, ""),
    ("provider add without a name", &["provider", "add"], None, USAGE, ""),
    ("provider add without an issuer", &["provider", "add", "x", "--client-id", "c"], None, USAGE, ""),
    ("--key-id without a key", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--key-id", "k"], None, USAGE, ""),
    ("--param without =", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--param", "noequals"], None, USAGE, ""),
    ("--param without a name", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--param", "=v"], None, USAGE, ""),
    ("a public token and a secret", &["provider", "add", "x", "--kind", "stytch_b2b", "--project-id", "p", "--public-token", "t", "--secret-stdin"], None, USAGE, ""),
    ("--device with --no-browser", &["login", "p", "--device", "--no-browser"], None, USAGE, ""),
    ("a negative --timeout", &["login", "p", "--timeout", "-5"], None, USAGE, ""),
    ("--password-stdin without --email", &["login", "p", "--password-stdin"], None, USAGE, ""),
    ("--oauth with --email", &["login", "p", "--oauth", "github", "--email", "a@example.com"], None, USAGE, ""),
    ("an unknown account", &["token", "nobody"], None, USAGE, "unknown_account"),
    ("an empty account", &["token", ""], None, USAGE, "unknown_account"),
    ("a 100 KB account", &["token", "{big}"], None, USAGE, "unknown_account"),
    ("claims of nobody", &["claims", "nobody", "--json"], None, USAGE, "unknown_account"),
    ("refresh of nobody", &["refresh", "nobody"], None, USAGE, "unknown_account"),
    ("userinfo of nobody", &["userinfo", "nobody"], None, USAGE, "unknown_account"),
    ("logout of nobody", &["logout", "nobody"], None, USAGE, "unknown_account"),
    ("orgs of nobody", &["orgs", "nobody"], None, USAGE, "unknown_account"),
    ("switch of nobody", &["switch", "nobody", "acme"], None, USAGE, "unknown_account"),
    ("an organization token where there are none", &["token", "{id}", "--org", "acme"], None, PROVIDER, "unsupported"),
    ("a switch where there are no organizations", &["switch", "{id}", "acme"], None, PROVIDER, "unsupported"),
    ("a provider name with a slash", &["provider", "add", "a/b", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("a provider name of 65 letters", &["provider", "add", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("an empty provider name", &["provider", "add", "", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("a provider name with an escape", &["provider", "add", "x\u{1b}[31m", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("a plain-http issuer elsewhere", &["provider", "add", "x", "--issuer", "http://evil.example", "--client-id", "c"], None, USAGE, "insecure_url"),
    ("a file issuer", &["provider", "add", "x", "--issuer", "file:///etc/passwd", "--client-id", "c"], None, USAGE, "insecure_url"),
    ("a javascript issuer", &["provider", "add", "x", "--issuer", "javascript:alert(1)", "--client-id", "c"], None, USAGE, "insecure_url"),
    ("an issuer that is no URL", &["provider", "add", "x", "--issuer", "not a url", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("an issuer with a query", &["provider", "add", "x", "--issuer", "{issuer}/?q=1", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("an empty client id", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", " "], None, USAGE, "invalid_config"),
    ("an unknown kind", &["provider", "add", "x", "--kind", "bogus", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "invalid_config"),
    ("an unknown client authentication", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--auth", "magic"], None, USAGE, "invalid_config"),
    ("a confidential client without its secret", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--auth", "client_secret_basic"], None, USAGE, "invalid_config"),
    ("an empty secret on stdin", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--auth", "client_secret_post", "--client-secret-stdin"], Some(""), USAGE, "invalid_config"),
    ("a public client with a secret", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--auth", "none", "--client-secret-stdin"], Some("s3cret-0123456789"), USAGE, "invalid_config"),
    ("a missing key file", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--private-key-file", "/nonexistent/key.pem"], None, USAGE, "invalid_config"),
    ("a key file of garbage", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--private-key-file", "{key}"], None, USAGE, "invalid_config"),
    ("a key file of 5 MB", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--private-key-file", "{huge_key}"], None, USAGE, "invalid_config"),
    ("a directory as the key file", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--private-key-file", "/tmp"], None, USAGE, "invalid_config"),
    ("a reserved --param", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--param", "state=x"], None, USAGE, "invalid_config"),
    ("scopes without openid", &["provider", "add", "x", "--issuer", "{issuer}", "--client-id", "c", "--scope", "email"], None, USAGE, "invalid_config"),
    ("a Stytch project without a token", &["provider", "add", "x", "--kind", "stytch_b2b", "--project-id", "project-test-x"], None, USAGE, "invalid_config"),
    ("a Stack project that is not there", &["provider", "add", "x", "--kind", "stack_auth", "--project-id", "p", "--publishable-key", "k", "--base-url", "{issuer}"], None, PROVIDER, "provider_error"),
    ("a provider name taken", &["provider", "add", "p", "--issuer", "{issuer}", "--client-id", "c"], None, USAGE, "provider_exists"),
    ("removing an unknown provider", &["provider", "remove", "nobody"], None, USAGE, "unknown_provider"),
    ("removing a provider with accounts", &["provider", "remove", "p"], None, USAGE, "invalid_config"),
    ("login at an unknown provider", &["login", "nobody", "--no-browser"], None, USAGE, "unknown_provider"),
    ("a reserved --param at login", &["login", "p", "--no-browser", "--param", "state=x"], None, USAGE, "invalid_config"),
    ("a redirect_uri of one's own", &["login", "p", "--no-browser", "--param", "redirect_uri=http://evil.example/cb"], None, USAGE, "invalid_config"),
    ("an organization where there are none", &["login", "p", "--no-browser", "--org", "acme"], None, PROVIDER, "unsupported"),
    ("an OAuth provider at an OpenID provider", &["login", "p", "--oauth", "github"], None, PROVIDER, "unsupported"),
    ("an e-mail sign-in at an OpenID provider", &["login", "p", "--email", "alice@example.com"], None, PROVIDER, "unsupported"),
    ("a device sign-in the provider does not offer", &["login", "p", "--device"], None, PROVIDER, "unsupported"),
];

#[tokio::test]
async fn hostile_arguments_are_typed_errors_and_change_nothing() {
    let env = env().await;
    let scratch = tempfile::tempdir().unwrap();
    let key = scratch.path().join("garbage.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot base64 !!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let huge_key = scratch.path().join("huge.pem");
    std::fs::write(&huge_key, vec![b'A'; 5 * 1024 * 1024]).unwrap();
    let big = "a".repeat(100 * 1024);
    let mut failures = Vec::new();
    let mut cases = 0;
    for &(name, args, stdin, status, code) in CASES {
        let args: Vec<OsString> = args
            .iter()
            .map(|a| {
                a.replace("{id}", &env.id)
                    .replace("{issuer}", &env.idp.issuer)
                    .replace("{big}", &big)
                    .replace("{key}", key.to_str().unwrap())
                    .replace("{huge_key}", huge_key.to_str().unwrap())
                    .into()
            })
            .collect();
        let before = stored(&env.cli).await;
        let out = run(&env.cli, &args, stdin.map(str::as_bytes), &[]).await;
        judge(name, &out, status, code, &mut failures);
        if stored(&env.cli).await != before {
            failures.push(format!("{name}: stored data changed"));
        }
        cases += 1;
    }
    let before = stored(&env.cli).await;
    let not_utf8 = [
        OsString::from("token"),
        OsString::from_vec(vec![b'a', 0xff, 0xfe]),
    ];
    let out = run(&env.cli, &not_utf8, None, &[]).await;
    judge(
        "an argument of invalid UTF-8",
        &out,
        USAGE,
        "",
        &mut failures,
    );
    if stored(&env.cli).await != before {
        failures.push("an argument of invalid UTF-8: stored data changed".into());
    }
    cases += 1;
    // An empty TESSERA_DATA_DIR must not put the state file in the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("accounts")
        .env("TESSERA_DATA_DIR", "")
        .current_dir(scratch.path())
        .output()
        .await
        .unwrap();
    judge("an empty TESSERA_DATA_DIR", &out, USAGE, "", &mut failures);
    if scratch.path().join("tessera.json").exists() {
        failures.push("an empty TESSERA_DATA_DIR: a state file in the working directory".into());
    }
    cases += 1;
    assert!(
        failures.is_empty(),
        "{} of {cases} argument cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    // Still signed in and working.
    env.cli.ok(&["token", &env.id, "--refresh"]).await;
}

#[rustfmt::skip]
const DAMAGE: &[(&str, &[u8])] = &[
    ("empty", b""),
    ("truncated", b"{\"version\":1,\"namespace\":\"0123456789ab\",\"provi"),
    ("a future version", b"{\"version\":2,\"namespace\":\"0123456789ab\",\"providers\":[],\"accounts\":[]}"),
    ("the accounts a string", b"{\"version\":1,\"namespace\":\"0123456789ab\",\"providers\":[],\"accounts\":\"x\"}"),
    ("a byte-order mark", b"\xef\xbb\xbf{\"version\":1,\"namespace\":\"0123456789ab\"}"),
    ("invalid UTF-8", b"{\"version\":1,\"namespace\":\"\xff\xfe\"}"),
];

/// Every command on a damaged `tessera.json` is exit 1 `[storage]`, and the file stays as it
/// was (no command "repairs" it by writing an empty state over the person's accounts).
#[tokio::test]
async fn a_damaged_state_file_is_exit_1_and_left_as_it_is() {
    assert_keychain_available();
    let mut failures = Vec::new();
    for &(name, bytes) in DAMAGE {
        for args in [
            &["accounts"][..],
            &["provider", "list", "--json"],
            &["token", "alice"],
            &["logout", "alice"],
        ] {
            let cli = Cli::default();
            std::fs::write(cli.dir.path().join("tessera.json"), bytes).unwrap();
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let out = run(&cli, &args, None, &[]).await;
            let case = format!("{name}, {args:?}");
            judge(&case, &out, 1, "storage", &mut failures);
            if std::fs::read(cli.dir.path().join("tessera.json")).unwrap() != bytes {
                failures.push(format!("{case}: the file was rewritten"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Without a Secret Service, every command that needs a secret is exit 5 `[keychain]`, and
/// nothing is written anywhere else instead.
#[tokio::test]
async fn without_a_secret_service_it_is_exit_5_and_nothing_falls_back_to_a_file() {
    let env = env().await;
    let before = stored(&env.cli).await;
    let gone = [("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")];
    let secret = "basic-secret-0123456789";
    let cases: [(&str, Vec<&str>, Option<&str>); 5] = [
        ("token", vec!["token", &env.id], None),
        ("refresh", vec!["refresh", &env.id], None),
        ("logout", vec!["logout", &env.id], None),
        ("claims", vec!["claims", &env.id], None),
        (
            "a provider with a secret",
            vec![
                "provider",
                "add",
                "q",
                "--issuer",
                &env.idp.issuer,
                "--client-id",
                "tessera-basic",
                "--auth",
                "client_secret_basic",
                "--client-secret-stdin",
            ],
            Some(secret),
        ),
    ];
    let mut failures = Vec::new();
    for (name, args, stdin) in cases {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let out = run(&env.cli, &args, stdin.map(str::as_bytes), &gone).await;
        judge(name, &out, 5, "keychain", &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(stored(&env.cli).await, before);
    assert!(env.cli.files_contain(secret).is_empty());
    assert!(
        env.cli.files_contain("rt-").is_empty(),
        "no refresh token in a file"
    );
    env.cli.ok(&["token", &env.id, "--refresh"]).await;
}

/// Terminal control sequences in what a person or a provider hands to `tessera` are not
/// echoed to the terminal (issue 8 item 11): an account query, and a provider's error text.
#[tokio::test]
async fn terminal_escapes_never_reach_the_terminal() {
    let env = env().await;
    let escapes = ['\u{1b}', '\u{7}', '\u{9b}'];
    let query = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m";
    let out = run(&env.cli, &["token".into(), query.into()], None, &[]).await;
    let mut failures = Vec::new();
    judge(
        "an account query",
        &out,
        USAGE,
        "unknown_account",
        &mut failures,
    );
    if text(&out.stderr).contains(escapes) {
        failures.push(format!("an account query: echoed {:?}", text(&out.stderr)));
    }
    env.idp.once(
        "/token",
        Answer::json(
            400,
            r#"{"error":"invalid_request","error_description":"\u001b]0;owned\u0007\u001b[2J"}"#,
        ),
    );
    let out = run(
        &env.cli,
        &["refresh".into(), env.id.clone().into()],
        None,
        &[],
    )
    .await;
    judge(
        "a provider's error text",
        &out,
        PROVIDER,
        "provider_error",
        &mut failures,
    );
    if text(&out.stderr).contains(escapes) {
        failures.push(format!(
            "a provider's error text: echoed {:?}",
            text(&out.stderr)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
