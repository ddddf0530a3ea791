//! The client side, for `tessera token` and `tessera refresh --all`: plain blocking I/O with short timeouts, so asking a
//! running agent needs no async runtime, and a missing or stuck agent costs milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroize;

use super::{Answer, Request};

/// How long a connected agent may take: a refresh at a slow provider, under its timeouts.
const ANSWER_WITHIN: Duration = Duration::from_secs(40);

/// Asks the agent of `socket`; `None` when no agent answers there (none running, an old
/// socket, a stuck agent), in which case the caller does the work itself.
pub fn ask(socket: &Path, request: &Request) -> Option<Answer> {
    ask_within(socket, request, ANSWER_WITHIN)
}

/// [`ask`], waiting up to `within` for the answer once connected.
pub fn ask_within(socket: &Path, request: &Request, within: Duration) -> Option<Answer> {
    let mut line = serde_json::to_vec(request).ok()?;
    line.push(b'\n');
    if line.len() > super::MAX_REQUEST {
        return None;
    }
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    stream.write_all(&line).ok()?;
    let mut line = String::new();
    let read = BufReader::new(stream).read_line(&mut line);
    let answer = read.ok().and_then(|_| serde_json::from_str(&line).ok());
    line.zeroize();
    answer
}
