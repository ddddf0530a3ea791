//! Shared set-up for the command-line tests: a data directory and the `tessera` binary run
//! in it, the browser played by the test, and the keychain read with `secret-tool`.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tessera_testkit::Browser;
use tessera_testkit::evidence::{Evidence, record};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// A data directory to run `tessera` in.
pub struct Cli {
    pub dir: tempfile::TempDir,
}

impl Default for Cli {
    fn default() -> Self {
        Cli {
            dir: tessera_testkit::evidence::data_dir(),
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Cli {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
        c.arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .kill_on_drop(true);
        c
    }

    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let what = args.join(" ");
        let kind = if args.first() == Some(&"token") {
            Evidence::CarriesToken
        } else {
            Evidence::Clean
        };
        record(kind, &what, &out.stdout);
        record(Evidence::Clean, &what, &out.stderr);
        out
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "tessera {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }

    /// Starts `tessera ARGS…` and hands back the child and its stderr, line by line.
    pub fn spawn(
        &self,
        args: &[&str],
    ) -> (
        tokio::process::Child,
        tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    ) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        (child, stderr)
    }

    /// `tessera login --no-browser`, with the test playing the browser.
    pub async fn login(&self, provider: &str, user: &str) -> String {
        self.login_with(provider, user, &[]).await
    }

    /// `tessera login PROVIDER --no-browser EXTRA…`, the test playing the browser.
    pub async fn login_with(&self, provider: &str, user: &str, extra: &[&str]) -> String {
        let mut args = vec!["login", provider, "--no-browser"];
        args.extend(extra);
        let (child, mut stderr) = self.spawn(&args);
        let url = stderr
            .next_line()
            .await
            .unwrap()
            .expect("the authorization URL on stderr");
        assert!(
            url.starts_with("http") && !url.contains(' '),
            "one line, the URL alone: {url}"
        );
        let browser = Browser::new();
        let callback = browser.login(&url, user).await;
        assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
        let (status, _) = browser.visit(&callback).await;
        assert_eq!(status, 200);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let mut rest = String::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            rest.push_str(&line);
        }
        assert_eq!(out.status.code(), Some(0), "login: {rest}");
        let id = text(&out.stdout).trim().to_string();
        assert!(id.starts_with("acc-"), "{id}");
        id
    }

    pub fn namespace(&self) -> String {
        let state: Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("tessera.json")).unwrap())
                .unwrap();
        state["namespace"].as_str().unwrap().to_string()
    }

    /// The keychain entry, read with `secret-tool` straight from the Secret Service.
    pub async fn keychain(&self, what: &str) -> Option<String> {
        let username = format!("{}/{what}", self.namespace());
        let out = Command::new("secret-tool")
            .args(["lookup", "service", "dev.tessera", "username", &username])
            .output()
            .await
            .unwrap();
        out.status.success().then(|| text(&out.stdout))
    }

    /// The token set of account `id`'s own slot, wherever the keychain holds it.
    pub async fn tokens(&self, id: &str) -> Value {
        let mut entries = std::collections::HashMap::new();
        let namespace = self.namespace();
        for what in [format!("account/{id}"), "shelf".to_string()] {
            if let Some(value) = self.keychain(&what).await {
                entries.insert(format!("{namespace}/{what}"), value);
            }
        }
        tessera_testkit::stored_tokens(self.dir.path(), id, |key| entries.get(key).cloned())
            .expect("the account's keychain entry")
    }

    pub fn files_contain(&self, needle: &str) -> Vec<String> {
        fn walk(dir: &std::path::Path, needle: &str, hits: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, needle, hits);
                } else if std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .contains(needle)
                {
                    hits.push(path.display().to_string());
                }
            }
        }
        let mut hits = Vec::new();
        walk(self.dir.path(), needle, &mut hits);
        hits
    }
}

pub fn assert_keychain_available() {
    let probe = ["service", "dev.tessera-probe", "username", "probe"];
    let stored = std::process::Command::new("sh")
        .args([
            "-c",
            "printf probe | secret-tool store --label=probe \"$@\"",
            "sh",
        ])
        .args(probe)
        .status()
        .is_ok_and(|s| s.success());
    let read = std::process::Command::new("secret-tool")
        .arg("lookup")
        .args(probe)
        .output();
    assert!(
        stored && read.is_ok_and(|o| o.stdout == b"probe"),
        "these tests need a running, unlocked Secret Service: run them through scripts/test"
    );
}
