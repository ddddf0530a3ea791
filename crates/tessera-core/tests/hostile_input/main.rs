//! The hostile-input corpus (issue 8): deep links and loopback callbacks ([`callbacks`]),
//! JWTs ([`jwts`]), provider answers ([`answers`]) and `tessera.json` corruption
//! ([`state_file`]). Each case is a row of a table: what goes in, the error code that must
//! come out with a part of its message, and the proof that nothing stored changed (the data
//! directory and the whole keychain, before and after). A case that panics, succeeds, or fails
//! with another error is reported by name; every case runs, and the test fails listing all
//! that did not hold.

#[path = "../adversary/mod.rs"]
mod adversary;
mod answers;
mod callbacks;
mod jwts;
mod state_file;

use tessera_core::Error;

/// The verdicts of a table's cases.
#[derive(Default)]
pub struct Verdicts {
    cases: usize,
    /// (case, what did not hold)
    failures: Vec<(String, String)>,
}

impl Verdicts {
    /// Judges one case: `got` (its error, or how it did not fail) must be error `code`
    /// whose message contains `says`.
    pub fn judge(&mut self, case: &str, got: Result<Error, String>, code: &str, says: &str) {
        self.cases += 1;
        match got {
            Ok(e) if e.code() == code && e.to_string().contains(says) => {}
            Ok(e) => self.fail(
                case,
                format!("expected [{code}] with \"{says}\", got [{}] {e}", e.code()),
            ),
            Err(how) => self.fail(case, format!("expected [{code}], but it {how}")),
        }
    }

    /// Records a broken promise of a case other than its error (stored data changed…).
    pub fn fail(&mut self, case: &str, what: String) {
        self.failures.push((case.to_string(), what));
    }

    /// Counts a case judged elsewhere: `Err` says how it did not hold.
    pub fn record(&mut self, case: &str, held: Result<(), String>) {
        self.cases += 1;
        if let Err(how) = held {
            self.fail(case, how);
        }
    }

    /// Takes in the verdicts of another table.
    pub fn merge(&mut self, other: Verdicts) {
        self.cases += other.cases;
        self.failures.extend(other.failures);
    }

    /// Fails the test with every case that did not hold; `table` names the corpus.
    pub fn done(self, table: &str, at_least: usize) {
        assert!(
            self.cases >= at_least,
            "{table}: only {} cases ran",
            self.cases
        );
        let failed: std::collections::BTreeSet<&str> = self
            .failures
            .iter()
            .map(|(case, _)| case.as_str())
            .collect();
        let lines: Vec<String> = self
            .failures
            .iter()
            .map(|(case, what)| format!("{case}: {what}"))
            .collect();
        assert!(
            self.failures.is_empty(),
            "{table}: {} of {} cases failed:\n  {}",
            failed.len(),
            self.cases,
            lines.join("\n  ")
        );
        eprintln!("{table}: {} cases held", self.cases);
    }
}
