//! `tessera.json` damaged: truncated, of the wrong types, from a future version, with
//! duplicate ids, huge or deeply nested. Opening the data directory must fail with a
//! `storage` error and leave the file exactly as it was (no "repair" that loses accounts).

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_core::clock::ShiftedClock;
use tessera_core::http::HttpConfig;
use tessera_core::{Options, Tessera};

use crate::Verdicts;
use crate::adversary::{Keychain, Snapshot, rig};

type Damage = fn(&Value) -> Vec<u8>;

fn text(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn with(good: &Value, pointer: &str, value: Value) -> Vec<u8> {
    let mut v = good.clone();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    text(v)
}

fn without(good: &Value, pointer: &str) -> Vec<u8> {
    let mut v = good.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    text(v)
}

fn doubled(good: &Value, list: &str) -> Vec<u8> {
    let mut v = good.clone();
    let first = v[list][0].clone();
    v[list].as_array_mut().unwrap().push(first);
    text(v)
}

/// The provider list replaced by arrays nested 100000 deep.
fn nested_providers(good: &Value) -> Vec<u8> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    String::from_utf8(with(good, "/providers", Value::Null))
        .unwrap()
        .replacen("\"providers\":null", &format!("\"providers\":{deep}"), 1)
        .into_bytes()
}

const DAMAGED: &str = "is damaged";

#[rustfmt::skip]
const CASES: &[(&str, Damage, &str)] = &[
    ("empty", |_| Vec::new(), DAMAGED),
    ("truncated to half", |g| { let t = g.to_string(); t.as_bytes()[..t.len() / 2].to_vec() }, DAMAGED),
    ("missing its last byte", |g| { let t = g.to_string(); t.as_bytes()[..t.len() - 1].to_vec() }, DAMAGED),
    ("an opening brace", |_| b"{".to_vec(), DAMAGED),
    ("null", |_| b"null".to_vec(), DAMAGED),
    ("an array", |_| b"[]".to_vec(), DAMAGED),
    ("a string", |_| b"\"tessera\"".to_vec(), DAMAGED),
    ("a number", |_| b"42".to_vec(), DAMAGED),
    ("an empty object", |_| b"{}".to_vec(), DAMAGED),
    ("the version a string", |g| with(g, "/version", "1".into()), DAMAGED),
    ("the version negative", |g| with(g, "/version", json!(-1)), DAMAGED),
    ("the version a fraction", |g| with(g, "/version", json!(1.5)), DAMAGED),
    ("the version beyond 32 bits", |g| with(g, "/version", json!(4_294_967_296u64)), DAMAGED),
    ("a future version", |g| with(g, "/version", 2.into()), "newer Tessera"),
    ("the version u32::MAX", |g| with(g, "/version", u32::MAX.into()), "newer Tessera"),
    ("no version", |g| without(g, "/version"), DAMAGED),
    ("no namespace", |g| without(g, "/namespace"), DAMAGED),
    ("the namespace a number", |g| with(g, "/namespace", 7.into()), DAMAGED),
    ("the namespace null", |g| with(g, "/namespace", Value::Null), DAMAGED),
    ("providers an object", |g| with(g, "/providers", json!({})), DAMAGED),
    ("a provider that is a number", |g| with(g, "/providers", json!([1])), DAMAGED),
    ("a provider without issuer", |g| without(g, "/providers/0/issuer"), DAMAGED),
    ("a provider of an unknown kind", |g| with(g, "/providers/0/kind", "mystery".into()), DAMAGED),
    ("an unknown client authentication", |g| with(g, "/providers/0/client_auth", "magic".into()), DAMAGED),
    ("an unknown redirect mode", |g| with(g, "/providers/0/redirect_mode", "pigeon".into()), DAMAGED),
    ("the scopes a string", |g| with(g, "/providers/0/scopes", "openid".into()), DAMAGED),
    ("accounts a string", |g| with(g, "/accounts", "alice".into()), DAMAGED),
    ("an account without id", |g| without(g, "/accounts/0/id"), DAMAGED),
    ("an account of an unknown status", |g| with(g, "/accounts/0/status", "hacked".into()), DAMAGED),
    ("created_at negative", |g| with(g, "/accounts/0/created_at", json!(-1)), DAMAGED),
    ("created_at a string", |g| with(g, "/accounts/0/created_at", "yesterday".into()), DAMAGED),
    ("created_at 1e300", |g| with(g, "/accounts/0/created_at", json!(1e300)), DAMAGED),
    ("the organizations a string", |g| with(g, "/accounts/0/orgs", "acme".into()), DAMAGED),
    ("two providers of one name", |g| doubled(g, "providers"), DAMAGED),
    ("two accounts of one id", |g| doubled(g, "accounts"), DAMAGED),
    ("the version twice", |g| { g.to_string() .replacen('{', "{\"version\":1,", 1) .into_bytes() }, "duplicate field"),
    ("the namespace twice", |g| { g.to_string() .replacen('{', "{\"namespace\":\"feedfacecafe\",", 1) .into_bytes() }, "duplicate field"),
    ("providers nested 100000 deep", nested_providers, DAMAGED),
    ("invalid UTF-8", |g| { g.to_string() .replacen("\"active\"", "\"act\u{1}\"", 1) .into_bytes() .into_iter() .map(|b| if b == 1 { 0xff } else { b }) .collect() }, DAMAGED),
    ("a byte-order mark", |g| [b"\xef\xbb\xbf".as_slice(), g.to_string().as_bytes()].concat(), DAMAGED),
    ("NUL bytes after it", |g| [g.to_string().as_bytes(), &[0u8; 16]].concat(), DAMAGED),
    ("two states in a row", |g| format!("{g}{g}").into_bytes(), DAMAGED),
    ("UTF-16", |g| { g.to_string() .encode_utf16() .flat_map(u16::to_le_bytes) .collect() }, DAMAGED),
    ("16 MB of garbage", |_| vec![b'x'; 16 * 1024 * 1024], DAMAGED),
];

#[tokio::test]
async fn a_damaged_state_file_is_refused_and_left_as_it_is() {
    let rig = rig().await;
    rig.sign_in("alice").await;
    let good: Value =
        serde_json::from_slice(&std::fs::read(rig.dir.path().join("tessera.json")).unwrap())
            .unwrap();
    let mut verdicts = Verdicts::default();
    let cases = CASES
        .iter()
        .map(|&(name, damage, says)| (name, Some(damage(&good)), says))
        .chain([("a directory", None, "read")]);
    for (name, bytes, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.json");
        match &bytes {
            Some(b) => std::fs::write(&file, b).unwrap(),
            None => std::fs::create_dir(&file).unwrap(),
        }
        let keychain = Arc::new(Keychain::default());
        let before = Snapshot::take(dir.path(), keychain.contents());
        let opened = Tessera::open(Options {
            data_dir: dir.path().to_path_buf(),
            store: keychain.clone(),
            clock: Arc::new(ShiftedClock::default()),
            http: HttpConfig::default(),
        });
        let got = match opened {
            Ok(t) => Err(format!(
                "opened, with {} accounts",
                t.accounts().map(|a| a.len()).unwrap_or(0)
            )),
            Err(e) => Ok(e),
        };
        verdicts.judge(name, got, "storage", says);
        let after = Snapshot::take(dir.path(), keychain.contents());
        if after != before {
            verdicts.fail(
                name,
                format!("the data directory changed: {:?}", before.diff(&after)),
            );
        }
    }
    verdicts.done("tessera.json damage", 45);
}
