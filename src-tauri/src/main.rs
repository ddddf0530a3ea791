//! Placeholder for the Tessera desktop shell; the command-line program `tessera` is the
//! current front end.

fn main() {
    eprintln!("The Tessera desktop app is not built yet; use the `tessera` command line.");
}
