//! Opening the system browser: `$BROWSER` when set (a command, `%s` replaced by the URL),
//! else the platform's opener. The child is not waited for.

use std::process::{Command, Stdio};

pub fn open(url: &str) -> Result<(), String> {
    let (program, args): (String, Vec<String>) = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => {
            let mut words = b.split_whitespace().map(String::from);
            let program = words.next().unwrap_or_default();
            let mut args: Vec<String> = words.map(|w| w.replace("%s", url)).collect();
            if !b.contains("%s") {
                args.push(url.to_string());
            }
            (program, args)
        }
        _ if cfg!(target_os = "macos") => ("open".into(), vec![url.into()]),
        _ if cfg!(windows) => ("explorer".into(), vec![url.into()]),
        _ => ("xdg-open".into(), vec![url.into()]),
    };
    Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("{program}: {e}"))
}
