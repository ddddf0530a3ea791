//! The keychain under load: sixteen `tessera` processes at a time reading and refreshing
//! many accounts straight from the Secret Service (no agent), round after round, in the same
//! private gnome-keyring session as the rest of the suite.
//!
//! What must hold: no call fails, the daemon that started the test is the one that answers at
//! the end (the session's watchdog restarts a dead one, so a new pid means it died), and each
//! process opens at most one Secret Service session (every session costs the daemon a key
//! exchange and client state it keeps for the life of the connection).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Cli, assert_keychain_available, text};
use tessera_testkit::{Idp, IdpOptions, Profile};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ACCOUNTS: usize = 16;
const PROCESSES: usize = 16;
const ROUNDS: usize = 4;

/// The pid of the session's gnome-keyring-daemon, as `scripts/keyring-session` records it.
fn daemon_pid() -> String {
    let runtime = std::env::var("XDG_RUNTIME_DIR").expect("run through scripts/keyring-session");
    std::fs::read_to_string(format!("{runtime}/gnome-keyring.pid"))
        .expect("scripts/keyring-session records the daemon's pid")
        .trim()
        .to_string()
}

fn alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid).exists()
}

/// Counts `OpenSession` calls to the Secret Service while it runs (a bus monitor).
struct SessionCounter {
    monitor: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl SessionCounter {
    async fn start() -> SessionCounter {
        let mut monitor = Command::new("dbus-monitor")
            .args([
                "--session",
                "type='method_call',interface='org.freedesktop.Secret.Service',member='OpenSession'",
                "type='signal',interface='dev.tessera.Test',member='Mark'",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-monitor (package dbus-bin)");
        let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
        // The monitor is listening once it sees our own marker signal.
        let marker = tokio::spawn(async {
            loop {
                let _ = Command::new("dbus-send")
                    .args(["--session", "/dev/tessera/Test", "dev.tessera.Test.Mark"])
                    .status()
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("member=Mark") {
                break;
            }
        }
        marker.abort();
        SessionCounter { monitor, lines }
    }

    /// Stops monitoring; the number of sessions opened meanwhile.
    async fn stop(mut self) -> usize {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.monitor.start_kill().unwrap();
        let mut opened = 0;
        while let Ok(Some(line)) = self.lines.next_line().await {
            if line.contains("member=OpenSession") {
                opened += 1;
            }
        }
        opened
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_processes_at_a_time_never_fail_the_keychain_nor_bring_it_down() {
    assert_keychain_available();
    let idp = Idp::start(IdpOptions {
        profile: Profile::Plain,
        ..Default::default()
    })
    .await;
    let cli = Cli::default();
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        let name = format!("p{i}");
        cli.ok(&[
            "provider",
            "add",
            &name,
            "--issuer",
            &idp.issuer,
            "--client-id",
            "tessera-public",
        ])
        .await;
        ids.push(cli.login(&name, "alice").await);
    }

    let daemon = daemon_pid();
    let sessions = SessionCounter::start().await;
    let mut failures = Vec::new();
    let mut processes = 0;
    for round in 0..ROUNDS {
        let args: &[&str] = match round % 2 {
            0 => &["token", "--refresh"],
            _ => &["token"],
        };
        let children: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let id = &ids[(round * PROCESSES + p) % ids.len()];
                let mut c = cli.command(&[args, &[id.as_str()]].concat());
                c.env("TESSERA_AGENT", "off")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        processes += children.len();
        for child in children {
            let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
                .await
                .expect("tessera finished")
                .unwrap();
            if out.status.code() != Some(0) {
                failures.push(text(&out.stderr));
            }
        }
    }
    let opened = sessions.stop().await;

    assert!(
        failures.is_empty(),
        "{} of {processes} calls failed: {failures:?}",
        failures.len()
    );
    assert!(
        alive(&daemon) && daemon_pid() == daemon,
        "gnome-keyring-daemon died under the load"
    );
    assert!(
        opened <= processes,
        "{processes} processes opened {opened} Secret Service sessions (at most one each)"
    );
}
