//! Callbacks: forged, malformed, replayed and oversized deep links and loopback redirects
//! handed to `complete_sign_in`, and junk sent to the loopback listener of a sign-in that is
//! waiting for its browser.

use std::time::{Duration, Instant};

use tessera_core::flow::{DEEP_LINK_REDIRECT, FLOW_TTL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Verdicts;
use crate::adversary::{PROVIDER, assert_unchanged, outcome, rig};

/// What happens to the flow before its callback arrives.
#[derive(Clone, Copy)]
enum Before {
    /// A deep-link sign-in, waiting.
    DeepLink,
    /// A loopback sign-in (redirect `http://127.0.0.1:9/callback`), waiting.
    Loopback,
    /// Cancelled by the person.
    Cancelled,
    /// Already answered once (by an `error=access_denied` callback).
    Used,
    /// Started more than the flow's lifetime ago.
    Expired,
}

/// `{state}` is the flow's state, `{STATE}` it in upper case, `{half}` its first half,
/// `{issuer}` the provider's issuer, `{big}` a megabyte of letters, `{many}` ten thousand
/// extra parameters.
#[rustfmt::skip]
const CASES: &[(&str, Before, &str, &str, &str)] = &[
    ("empty", Before::DeepLink, "", "malformed_callback", "not a URL"),
    ("not a URL", Before::DeepLink, "not a url", "malformed_callback", "not a URL"),
    ("only spaces", Before::DeepLink, "   ", "malformed_callback", "not a URL"),
    ("no query", Before::DeepLink, "dev.tessera:/callback", "malformed_callback", "no state"),
    ("no state", Before::DeepLink, "dev.tessera:/callback?code=c", "malformed_callback", "no state"),
    ("empty state", Before::DeepLink, "dev.tessera:/callback?code=c&state=", "malformed_callback", "no state"),
    ("state only", Before::DeepLink, "dev.tessera:/callback?state={state}", "malformed_callback", "neither a code nor an error"),
    ("empty code", Before::DeepLink, "dev.tessera:/callback?code=&state={state}", "malformed_callback", "neither a code nor an error"),
    ("empty error", Before::DeepLink, "dev.tessera:/callback?error=&state={state}", "malformed_callback", "neither a code nor an error"),
    ("state twice", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&state={state}", "malformed_callback", "appears twice"),
    ("state twice, another first", Before::DeepLink, "dev.tessera:/callback?code=c&state=zzz&state={state}", "malformed_callback", "appears twice"),
    ("code twice", Before::DeepLink, "dev.tessera:/callback?code=a&code=b&state={state}", "malformed_callback", "appears twice"),
    ("iss twice", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&iss={issuer}&iss={issuer}", "malformed_callback", "appears twice"),
    ("error twice", Before::DeepLink, "dev.tessera:/callback?error=a&error=b&state={state}", "malformed_callback", "appears twice"),
    ("fragment instead of query", Before::DeepLink, "dev.tessera:/callback#code=c&state={state}", "malformed_callback", "no state"),
    ("semicolon separators", Before::DeepLink, "dev.tessera:/callback?code=c;state={state}", "malformed_callback", "no state"),
    ("HTML-escaped ampersand", Before::DeepLink, "dev.tessera:/callback?code=c&amp;state={state}", "malformed_callback", "no state"),
    ("State in another case", Before::DeepLink, "dev.tessera:/callback?code=c&State={state}", "malformed_callback", "no state"),
    ("state as an array", Before::DeepLink, "dev.tessera:/callback?code=c&state[]={state}", "malformed_callback", "no state"),
    ("unknown state", Before::DeepLink, "dev.tessera:/callback?code=c&state=zzz", "unknown_state", ""),
    ("state in upper case", Before::DeepLink, "dev.tessera:/callback?code=c&state={STATE}", "unknown_state", ""),
    ("state with a trailing space", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}%20", "unknown_state", ""),
    ("state with a suffix", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}x", "unknown_state", ""),
    ("state with a prefix", Before::DeepLink, "dev.tessera:/callback?code=c&state=x{state}", "unknown_state", ""),
    ("half the state", Before::DeepLink, "dev.tessera:/callback?code=c&state={half}", "unknown_state", ""),
    ("a megabyte of state", Before::DeepLink, "dev.tessera:/callback?code=c&state={big}", "unknown_state", ""),
    ("state of invalid UTF-8", Before::DeepLink, "dev.tessera:/callback?code=c&state=%FF%FE%FD", "unknown_state", ""),
    ("state of a NUL", Before::DeepLink, "dev.tessera:/callback?code=c&state=%00", "unknown_state", ""),
    ("state behind a right-to-left override", Before::DeepLink, "dev.tessera:/callback?code=c&state=%E2%80%AE{state}", "unknown_state", ""),
    ("state with a Cyrillic letter", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}%D0%B0", "unknown_state", ""),
    ("header injection after the state", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}\r\nSet-Cookie: x=y", "unknown_state", ""),
    ("error for an unknown state", Before::DeepLink, "dev.tessera:/callback?error=access_denied&state=zzz", "unknown_state", ""),
    ("other path", Before::DeepLink, "dev.tessera:/evil?code=c&state={state}", "malformed_callback", "unexpected path"),
    ("path in upper case", Before::DeepLink, "dev.tessera:/CALLBACK?code=c&state={state}", "malformed_callback", "unexpected path"),
    ("path with a trailing slash", Before::DeepLink, "dev.tessera:/callback/?code=c&state={state}", "malformed_callback", "unexpected path"),
    ("authority instead of path", Before::DeepLink, "dev.tessera://callback?code=c&state={state}", "malformed_callback", "unexpected path"),
    ("https to another site", Before::DeepLink, "https://evil.example/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("loopback for a deep-link sign-in", Before::DeepLink, "http://127.0.0.1:1/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("file URL", Before::DeepLink, "file:///callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("javascript URL", Before::DeepLink, "javascript:/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("another custom scheme", Before::DeepLink, "dev.tessera.evil:/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("deep link for a loopback sign-in", Before::Loopback, "dev.tessera:/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("loopback on another port", Before::Loopback, "http://127.0.0.1:10/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("localhost for 127.0.0.1", Before::Loopback, "http://localhost:9/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("https for http", Before::Loopback, "https://127.0.0.1:9/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("another loopback address", Before::Loopback, "http://127.0.0.2:9/callback?code=c&state={state}", "malformed_callback", "arrived at"),
    ("access denied", Before::DeepLink, "dev.tessera:/callback?error=access_denied&state={state}", "authorization_denied", "access_denied"),
    ("denied with a script in the description", Before::DeepLink, "dev.tessera:/callback?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}", "authorization_denied", "access_denied"),
    ("terminal escapes in the error", Before::DeepLink, "dev.tessera:/callback?error=x%1B%5B2J&error_description=%1B%5D0%3Bowned%07&state={state}", "authorization_denied", "provider refused"),
    ("an error and a code", Before::DeepLink, "dev.tessera:/callback?error=server_error&code=c&state={state}", "authorization_denied", "server_error"),
    ("a megabyte of error description", Before::DeepLink, "dev.tessera:/callback?error=access_denied&error_description={big}&state={state}", "authorization_denied", "access_denied"),
    ("another issuer", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&iss=http%3A%2F%2Fevil.example", "issuer_mismatch", "evil.example"),
    ("empty issuer", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&iss=", "issuer_mismatch", ""),
    ("issuer with a trailing slash", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&iss={issuer}%2F", "issuer_mismatch", ""),
    ("issuer in upper case", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&iss=HTTP%3A%2F%2F127.0.0.1", "issuer_mismatch", ""),
    ("another issuer on a denial", Before::DeepLink, "dev.tessera:/callback?error=access_denied&state={state}&iss=http%3A%2F%2Fevil.example", "issuer_mismatch", ""),
    ("after cancel", Before::Cancelled, "dev.tessera:/callback?code=c&state={state}", "state_replayed", "already used"),
    ("replayed", Before::Used, "dev.tessera:/callback?code=c&state={state}", "state_replayed", "already used"),
    ("replayed denial", Before::Used, "dev.tessera:/callback?error=access_denied&state={state}", "state_replayed", ""),
    ("expired", Before::Expired, "dev.tessera:/callback?code=c&state={state}", "flow_expired", "no longer waiting"),
    ("a code the provider never issued", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}", "provider_error", "invalid_grant"),
    ("control characters in the code", Before::DeepLink, "dev.tessera:/callback?code=c%00%01%1B%7F&state={state}", "provider_error", "invalid_grant"),
    ("a megabyte of code", Before::DeepLink, "dev.tessera:/callback?code={big}&state={state}", "provider_error", "invalid_grant"),
    ("ten thousand extra parameters", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&{many}", "provider_error", "invalid_grant"),
    ("a redirect_uri of its own", Before::DeepLink, "dev.tessera:/callback?code=c&state={state}&redirect_uri=https%3A%2F%2Fevil.example", "provider_error", "invalid_grant"),
];

#[tokio::test]
async fn forged_and_malformed_callbacks_are_typed_errors_and_change_nothing() {
    let rig = rig().await;
    rig.sign_in("alice").await;
    let baseline = rig.snapshot();
    let big = "a".repeat(1024 * 1024);
    let many: String = (0..10_000)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let mut verdicts = Verdicts::default();
    for &(name, when, template, code, says) in CASES {
        let redirect = match when {
            Before::Loopback => "http://127.0.0.1:9/callback",
            _ => DEEP_LINK_REDIRECT,
        };
        let start = rig
            .tessera
            .start_sign_in(PROVIDER, redirect, &[])
            .await
            .unwrap();
        let state = start.flow_id;
        let url = template
            .replace("{state}", &state)
            .replace("{STATE}", &state.to_uppercase())
            .replace("{half}", &state[..state.len() / 2])
            .replace("{issuer}", &rig.idp.issuer)
            .replace("{big}", &big)
            .replace("{many}", &many);
        match when {
            Before::Cancelled => assert!(rig.tessera.cancel_sign_in(&state)),
            Before::Used => {
                let denied = format!("dev.tessera:/callback?error=access_denied&state={state}");
                rig.tessera.complete_sign_in(&denied).await.unwrap_err();
            }
            Before::Expired => rig.clock.advance(FLOW_TTL as i64 + 1),
            Before::DeepLink | Before::Loopback => {}
        }
        let before = rig.snapshot();
        let t = rig.tessera.clone();
        let got = outcome(async move { t.complete_sign_in(&url).await }).await;
        if let Before::Expired = when {
            rig.clock.advance(-(FLOW_TTL as i64 + 1));
        }
        verdicts.judge(name, got, code, says);
        let after = rig.snapshot();
        if after != before {
            verdicts.fail(
                name,
                format!("stored data changed: {:?}", before.diff(&after)),
            );
        }
        assert_eq!(rig.idp.pending("/token"), 0);
    }
    assert_unchanged("callbacks", &baseline, &rig.snapshot());
    assert!(rig.leaked().is_empty(), "{:?}", rig.leaked());
    verdicts.done("callbacks", 60);
}

/// What a local process or a web page sends to the loopback port of a waiting sign-in.
/// `{state}` is the real flow's state (which a stranger does not know, but a request that
/// carries it on the wrong method or path must not end the wait either).
#[rustfmt::skip]
const JUNK: &[(&str, &[u8])] = &[
    ("favicon", b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("the callback POSTed", b"POST /callback?code=x&state={state} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
    ("a longer path", b"GET /callbackx?code=x&state={state} HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("binary garbage", b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"),
    ("a TLS hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
    ("20 KB of headers", b"GET /favicon.ico HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n"),
    ("a request line alone, then close", b"GET /favicon.ico HTTP/1.1"),
    ("a callback with a forged state", b"GET /callback?code=x&state=zzz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a callback without a query", b"GET /callback HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a forged denial", b"GET /callback?error=access_denied&state=zzz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a callback without a state", b"GET /callback?code=x HTTP/1.1\r\nHost: x\r\n\r\n"),
];

/// Junk on the port of a waiting loopback sign-in neither ends the wait nor delays it: the
/// real callback, sent after it, signs in (issue 8 item 2). Also an idle connection, and one
/// that sends half a request and stalls, must not hold the real callback up.
#[tokio::test]
async fn junk_on_the_loopback_port_neither_ends_nor_holds_up_a_sign_in() {
    let rig = rig().await;
    let pad = "a".repeat(20 * 1024);
    let mut verdicts = Verdicts::default();
    let cases = JUNK.iter().map(|(n, b)| (*n, Some(*b), false)).chain([
        ("an idle connection", None, true),
        ("half a request, then silence", Some(&b"GET /fav"[..]), true),
    ]);
    for (name, junk, held_open) in cases {
        let t = rig.tessera.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let waiting = tokio::spawn(async move {
            t.sign_in_with_loopback(
                PROVIDER,
                &[],
                move |s| {
                    let _ = tx.send(s.authorization_url.clone());
                },
                Duration::from_secs(20),
                std::future::pending::<()>(),
            )
            .await
        });
        let url = rx.await.unwrap();
        let state = tessera_core::flow::query_param(&url, "state").unwrap();
        let redirect = tessera_core::flow::query_param(&url, "redirect_uri").unwrap();
        let port: u16 = redirect
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/callback")
            .parse()
            .unwrap();
        let mut open = Vec::new();
        if let Some(bytes) = junk {
            let text = String::from_utf8_lossy(bytes)
                .replace("{state}", &state)
                .replace("{pad}", &pad);
            let bytes = if bytes.is_ascii() {
                text.into_bytes()
            } else {
                bytes.to_vec()
            };
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let _ = s.write_all(&bytes).await;
            if held_open {
                open.push(s);
            } else {
                let _ = s.shutdown().await;
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut answer)).await;
            }
        } else {
            open.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        if waiting.is_finished() {
            let how = match waiting.await {
                Ok(Ok(a)) => format!("signed in {}", a.subject),
                Ok(Err(e)) => format!("[{}] {e}", e.code()),
                Err(p) => format!("panicked: {p}"),
            };
            verdicts.record(name, Err(format!("the junk ended the wait: {how}")));
            continue;
        }
        let callback = rig.idp.authorize(&url, "bob");
        let began = Instant::now();
        let browser = tokio::spawn(async move {
            let _ = reqwest::Client::new().get(&callback).send().await;
        });
        let mut waiting = waiting;
        let signed_in = tokio::time::timeout(Duration::from_secs(3), &mut waiting).await;
        waiting.abort();
        let held = match signed_in {
            Ok(Ok(Ok(account))) if account.subject == "bob" => {
                rig.tessera.sign_out(&account.id, false).await.unwrap();
                Ok(())
            }
            Ok(Ok(Ok(account))) => Err(format!("signed in {}", account.subject)),
            Ok(Ok(Err(e))) => Err(format!("the sign-in failed: [{}] {e}", e.code())),
            Ok(Err(p)) => Err(format!("panicked: {p}")),
            Err(_) => Err(format!(
                "the real callback was held up for more than {:?}",
                began.elapsed()
            )),
        };
        verdicts.record(name, held);
        browser.abort();
        drop(open);
    }
    for left in rig.tessera.accounts().unwrap() {
        verdicts.fail(
            "after all",
            format!("account {} of {} is left", left.id, left.subject),
        );
    }
    verdicts.done("loopback junk", 13);
}
