//! What the command line prints: a compact human form, or `--json` for scripts.

use std::borrow::Cow;

use serde::Serialize;
use tessera_core::claims::{ClaimRow, relative, utc};
use tessera_core::jwt::CheckStatus;
use tessera_core::{
    Account, AccountStatus, ClaimsReport, Error, IssuedToken, OrgView, ProviderConfig,
    RefreshOutcome,
};

type Out = tessera_core::Result<()>;

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
    println!("{text}");
    Ok(())
}

fn now() -> u64 {
    tessera_core::clock::Clock::now(&tessera_core::clock::SystemClock)
}

pub fn providers(providers: &[ProviderConfig], as_json: bool) -> Out {
    if as_json {
        return json(&providers);
    }
    if providers.is_empty() {
        eprintln!(
            "No providers yet. Add one with: tessera provider add NAME --issuer URL --client-id ID"
        );
    }
    for p in providers {
        println!(
            "{}\t{}\t{}\t{:?}\t{}",
            p.name,
            p.issuer,
            p.client_id,
            p.client_auth,
            p.scopes.join(" ")
        );
    }
    Ok(())
}

pub fn accounts(accounts: &[Account], as_json: bool) -> Out {
    if as_json {
        return json(&accounts);
    }
    if accounts.is_empty() {
        eprintln!("No accounts yet. Sign in with: tessera login PROVIDER");
    }
    for a in accounts {
        let status = match a.status {
            AccountStatus::Active => "active",
            AccountStatus::NeedsSignIn => "needs sign-in",
        };
        println!(
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
        eprintln!("This account belongs to no organization the provider told Tessera about.");
    }
    for o in orgs {
        let mut flags = Vec::new();
        if o.current {
            flags.push("current");
        }
        if o.signed_in {
            flags.push("signed in");
        }
        println!(
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
    println!("{}", issued.token.expose_secret());
    Ok(())
}

pub fn claims(report: &ClaimsReport, as_json: bool) -> Out {
    if as_json {
        return json(report);
    }
    println!(
        "{} of {} ({})",
        report.token.replace('_', " "),
        report.account_id,
        report.format
    );
    if !report.header.is_empty() {
        println!("\nHeader");
        rows(&report.header);
    }
    println!("\nClaims");
    rows(&report.claims);
    println!("\nChecks");
    for c in &report.checks {
        let mark = match c.status {
            CheckStatus::Pass => "✓",
            CheckStatus::Fail => "✗",
            CheckStatus::Skipped => "–",
        };
        println!("  {mark} {:<12} {}", c.name, c.detail);
    }
    println!(
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
            Some(d) => println!("  {:<16} {value}\n  {:<16} ↳ {d}", r.name, ""),
            None => println!("  {:<16} {value}", r.name),
        }
    }
}

pub fn refresh(outcome: &RefreshOutcome, as_json: bool) -> Out {
    if as_json {
        return json(outcome);
    }
    let when = |t: Option<u64>| {
        t.map(|t| format!("{} ({})", utc(t), relative(t, now())))
            .unwrap_or("unknown".into())
    };
    println!("Refreshed {}.", outcome.account_id);
    println!(
        "  expires: {} → {}",
        when(outcome.previous_expires_at),
        when(outcome.expires_at)
    );
    println!(
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
        println!("  {}: {} → {}", c.name, show(&c.before), show(&c.after));
    }
    Ok(())
}
