//! What the command line prints: a compact human form, or `--json` for scripts.
//!
//! Everything printed loses its terminal control characters first ([`terminal_safe`]; the
//! [`say!`] and [`tell!`] macros for formatted lines): provider-supplied text (claims, names,
//! error descriptions) must not drive the terminal (move the cursor, retitle the window, hide
//! text).

use std::borrow::Cow;

use serde::Serialize;
use tessera_core::agent::RefreshRow;
use tessera_core::claims::{ClaimRow, relative, utc};
use tessera_core::jwt::CheckStatus;
use tessera_core::{
    Account, AccountStatus, ClaimsReport, Error, IssuedToken, OrgView, ProviderConfig,
    RefreshOutcome,
};

type Out = tessera_core::Result<()>;

/// `println!` with terminal control characters removed (see the module docs).
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::output::terminal_safe(&format!($($arg)*)))
    };
}

/// `eprintln!` with terminal control characters removed (see the module docs).
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::output::terminal_safe(&format!($($arg)*)))
    };
}

pub(crate) use {say, tell};

/// `text` without control characters (C0 including ESC and CR, DEL, C1), but for newline
/// and tab. Borrowed when there is nothing to remove.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if text.contains(unsafe_char) {
        Cow::Owned(text.chars().filter(|&c| !unsafe_char(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

pub fn json(value: &impl Serialize) -> Out {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Storage(format!("cannot print JSON: {e}")))?;
    println!("{}", terminal_safe(&text));
    Ok(())
}

fn now() -> u64 {
    tessera_core::clock::Clock::now(&tessera_core::clock::SystemClock)
}

/// A provider as `provider list --json` shows it: its configuration and the redirect URLs
/// to register at it.
#[derive(Serialize)]
struct ProviderOut<'a> {
    #[serde(flatten)]
    config: &'a ProviderConfig,
    redirect_urls: Vec<String>,
}

pub fn providers(providers: &[ProviderConfig], as_json: bool) -> Out {
    if as_json {
        let out: Vec<ProviderOut> = providers
            .iter()
            .map(|config| ProviderOut {
                config,
                redirect_urls: config.redirect_urls(),
            })
            .collect();
        return json(&out);
    }
    if providers.is_empty() {
        tell!(
            "No providers yet. Add one with: tessera provider add NAME --issuer URL --client-id ID"
        );
    }
    for p in providers {
        say!(
            "{}\t{}\t{}\t{:?}\t{}\t{}",
            p.name,
            p.issuer,
            p.client_id,
            p.client_auth,
            p.scopes.join(" "),
            p.redirect_urls().join(" ")
        );
    }
    Ok(())
}

pub fn accounts(accounts: &[Account], as_json: bool) -> Out {
    if as_json {
        return json(&accounts);
    }
    if accounts.is_empty() {
        tell!("No accounts yet. Sign in with: tessera login PROVIDER");
    }
    for a in accounts {
        let status = match (a.status, a.restriction) {
            (AccountStatus::NeedsSignIn, _) => "needs sign-in".to_string(),
            (AccountStatus::Active, None) => "active".to_string(),
            (AccountStatus::Active, Some(r)) => format!("restricted: {}", r.hint()),
        };
        say!(
            "{}\t{}\t{}\t{}\t{}",
            a.id,
            a.provider,
            a.email.as_deref().unwrap_or(&a.subject),
            status,
            a.orgs.join(",")
        );
    }
    Ok(())
}

pub fn orgs(orgs: &[OrgView], as_json: bool) -> Out {
    if as_json {
        return json(&orgs);
    }
    if orgs.is_empty() {
        tell!("This account belongs to no organization the provider told Tessera about.");
    }
    for o in orgs {
        let mut flags = Vec::new();
        if o.current {
            flags.push("current");
        }
        if o.signed_in {
            flags.push("signed in");
        }
        say!(
            "{}\t{}\t{}",
            o.id,
            o.name.as_deref().unwrap_or(""),
            flags.join(", ")
        );
    }
    Ok(())
}

pub fn token(account_id: &str, issued: &IssuedToken, id_token: bool, as_json: bool) -> Out {
    if as_json {
        #[derive(Serialize)]
        struct TokenOut<'a> {
            account_id: &'a str,
            token_type: &'a str,
            token: &'a str,
            expires_at: Option<u64>,
            refreshed: bool,
        }
        return json(&TokenOut {
            account_id,
            token_type: if id_token { "id_token" } else { "access_token" },
            token: issued.token.expose_secret(),
            expires_at: issued.expires_at,
            refreshed: issued.refreshed,
        });
    }
    println!("{}", terminal_safe(issued.token.expose_secret()));
    Ok(())
}

pub fn claims(report: &ClaimsReport, as_json: bool) -> Out {
    if as_json {
        return json(report);
    }
    say!(
        "{} of {} ({})",
        report.token.replace('_', " "),
        report.account_id,
        report.format
    );
    if !report.header.is_empty() {
        say!("\nHeader");
        rows(&report.header);
    }
    say!("\nClaims");
    rows(&report.claims);
    say!("\nChecks");
    for c in &report.checks {
        let mark = match c.status {
            CheckStatus::Pass => "✓",
            CheckStatus::Fail => "✗",
            CheckStatus::Skipped => "–",
        };
        say!("  {mark} {:<12} {}", c.name, c.detail);
    }
    say!(
        "\n{}",
        if report.verified {
            "Verified."
        } else {
            "NOT verified: see the failed checks."
        }
    );
    Ok(())
}

fn rows(rows: &[ClaimRow]) {
    for r in rows {
        let value = r.rendered.clone().unwrap_or_else(|| match &r.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        match &r.description {
            Some(d) => say!("  {:<16} {value}\n  {:<16} ↳ {d}", r.name, ""),
            None => say!("  {:<16} {value}", r.name),
        }
    }
}

/// `refresh --all`: one line per account (or a JSON array of `{account_id, ok, …}`); fails
/// (with the first failure's error, after printing all) when any account failed.
pub fn refresh_all(rows: &[RefreshRow], as_json: bool) -> Out {
    if as_json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| match &r.failure {
                None => serde_json::json!({"account_id": r.account_id, "ok": true, "rotated": r.rotated, "expires_at": r.expires_at}),
                Some(f) => serde_json::json!({"account_id": r.account_id, "ok": false, "code": f.code, "message": f.message}),
            })
            .collect();
        json(&rows)?;
    } else {
        for r in rows {
            let id = &r.account_id;
            match &r.failure {
                None => say!(
                    "{id}\trefreshed\t{}",
                    if r.rotated { "rotated" } else { "kept" }
                ),
                Some(f) => say!("{id}\tfailed\t{} [{}]", f.message, f.code),
            }
        }
    }
    let failed = rows.iter().filter(|r| r.failure.is_some()).count();
    if failed > 0 {
        return Err(Error::Provider {
            error: "refresh_failed".into(),
            description: Some(format!(
                "{failed} of {} accounts did not refresh",
                rows.len()
            )),
        });
    }
    Ok(())
}

pub fn refresh(outcome: &RefreshOutcome, as_json: bool) -> Out {
    if as_json {
        return json(outcome);
    }
    let when = |t: Option<u64>| {
        t.map(|t| format!("{} ({})", utc(t), relative(t, now())))
            .unwrap_or("unknown".into())
    };
    say!("Refreshed {}.", outcome.account_id);
    say!(
        "  expires: {} → {}",
        when(outcome.previous_expires_at),
        when(outcome.expires_at)
    );
    say!(
        "  refresh token: {}",
        if outcome.rotated {
            "rotated"
        } else {
            "unchanged"
        }
    );
    for c in &outcome.changed_claims {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or("—".into());
        say!("  {}: {} → {}", c.name, show(&c.before), show(&c.after));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_removed_and_layout_kept() {
        let hostile = "\u{1b}]0;pwned\u{7}alice\u{1b}[2J\r\u{9b}31m@example.com\u{7f}\u{0}";
        assert_eq!(terminal_safe(hostile), "]0;pwnedalice[2J31m@example.com");
        assert!(matches!(
            terminal_safe("a\tb\nc ünïcødé ✓"),
            Cow::Borrowed("a\tb\nc ünïcødé ✓")
        ));
    }
}
