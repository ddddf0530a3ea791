//! The loopback redirect receiver (RFC 8252 §7.3): a listener on `127.0.0.1:<random port>`
//! that waits for the one `GET /callback` it is told to expect, answers it with a small
//! "return to Tessera" page and hands the full callback URL back.
//!
//! Anything else on the port — other paths, a callback with another `state`, malformed or
//! oversized requests, port-scanner garbage, connections that never send a request — gets an
//! error page (or is closed) and does not end the wait. Each connection is bounded
//! ([`READ_TIMEOUT`], [`MAX_HEAD`]) and handled on its own, so a stalled one cannot hold up the
//! real callback; at most [`MAX_CONNECTIONS`] are served at once (more wait their turn). The wait ends only with the
//! expected callback, or when the caller stops waiting (timeout, cancel).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use url::Url;

use crate::error::{Error, Result};
use crate::flow::query_param;

/// How long a connection may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest request head read (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// Connections served at once; more wait in the listen backlog until one is done.
pub const MAX_CONNECTIONS: usize = 32;

/// How long an answer may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the peer is given to close after the answer.
const LINGER: Duration = Duration::from_secs(1);

/// A bound loopback listener waiting for the browser.
#[derive(Debug)]
pub struct LoopbackReceiver {
    listener: TcpListener,
    port: u16,
}

/// What a connection asked for.
enum Request {
    /// `GET /callback…`, as the full URL.
    Callback(Url),
    NotFound,
    Malformed,
    TooLarge,
    /// Nothing usable arrived in time, or the peer went away: close without answering.
    Silent,
}

enum Event {
    Read(TcpStream, Request),
    Answered,
}

impl LoopbackReceiver {
    /// Binds a random port on 127.0.0.1.
    pub async fn bind() -> Result<Self> {
        Self::listen(0).await.map_err(|e| cannot_listen(0, &e))
    }

    /// Binds `port` on 127.0.0.1: the port a provider that matches redirect URLs exactly was
    /// told about. A port someone else holds is [`Error::PortInUse`].
    pub async fn bind_port(port: u16) -> Result<Self> {
        Self::listen(port).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Error::PortInUse {
                port,
                reason: e.to_string(),
            },
            _ => cannot_listen(port, &e),
        })
    }

    async fn listen(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        Ok(LoopbackReceiver { listener, port })
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits for the callback of the browser sign-in whose `state` is `state`.
    pub async fn receive_for(self, state: &str) -> Result<String> {
        self.receive_with("state", state).await
    }

    /// Waits for a callback carrying query parameter `name` exactly once, equal to `value`.
    pub async fn receive_with(self, name: &str, value: &str) -> Result<String> {
        self.receive_when(|url| query_param(url.as_str(), name).is_some_and(|v| v == value))
            .await
    }

    /// Waits for any `GET /callback`, whatever it carries.
    ///
    /// Prefer [`LoopbackReceiver::receive_for`] or [`LoopbackReceiver::receive_with`]: with
    /// this one, any local process or web page that finds the port ends the wait.
    pub async fn receive(self) -> Result<String> {
        self.receive_when(|_| true).await
    }

    /// Waits for a `GET /callback` whose URL `expected` accepts; every other request is
    /// answered with an error page and the wait goes on.
    pub async fn receive_when(self, mut expected: impl FnMut(&Url) -> bool) -> Result<String> {
        let mut connections: JoinSet<Event> = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(read_request(stream, self.port));
                    }
                }
                Some(done) = connections.join_next() => {
                    let Ok(Event::Read(mut stream, request)) = done else {
                        continue;
                    };
                    let (status, body) = match request {
                        Request::Callback(url) if expected(&url) => {
                            let _ = tokio::time::timeout(
                                WRITE_TIMEOUT,
                                respond(&mut stream, "200 OK", &received_page(&url)),
                            )
                            .await;
                            return Ok(url.to_string());
                        }
                        Request::Callback(_) => ("400 Bad Request", UNEXPECTED_PAGE),
                        Request::NotFound => ("404 Not Found", "<h1>Not found</h1>"),
                        Request::Malformed => ("400 Bad Request", "<h1>Bad request</h1>"),
                        Request::TooLarge => (
                            "431 Request Header Fields Too Large",
                            "<h1>Request too large</h1>",
                        ),
                        Request::Silent => continue,
                    };
                    connections.spawn(async move {
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, respond(&mut stream, status, body))
                            .await;
                        Event::Answered
                    });
                }
            }
        }
    }
}

const UNEXPECTED_PAGE: &str = "<h1>Tessera is not waiting for this sign-in</h1>\
    <p>This link does not belong to the sign-in Tessera started, so it was ignored. \
    If you are signing in, return to Tessera.</p>";

/// Reads one request head within [`READ_TIMEOUT`] and [`MAX_HEAD`].
async fn read_request(mut stream: TcpStream, port: u16) -> Event {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok::<_, std::io::Error>(end + 4 <= MAX_HEAD);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let request = match read {
        Ok(Ok(true)) => parse_head(&head, port),
        Ok(Ok(false)) => Request::TooLarge,
        Ok(Err(_)) | Err(_) => Request::Silent,
    };
    Event::Read(stream, request)
}

fn parse_head(head: &[u8], port: u16) -> Request {
    let Some(line) = head
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return Request::Malformed;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::Malformed;
    }
    if method != "GET" || !(target == "/callback" || target.starts_with("/callback?")) {
        return Request::NotFound;
    }
    match Url::parse(&format!("http://127.0.0.1:{port}{target}")) {
        Ok(url) if url.path() == "/callback" => Request::Callback(url),
        _ => Request::Malformed,
    }
}

/// The page for the expected callback: received, or the provider's error named.
fn received_page(url: &Url) -> String {
    match query_param(url.as_str(), "error") {
        Some(error) => format!(
            "<h1>Sign-in did not complete</h1><p>The provider answered <code>{}</code>. Return to Tessera for details.</p>",
            escape(&error)
        ),
        None => "<h1>Tessera received your sign-in</h1><p>You can close this tab and return to Tessera.</p>".to_string(),
    }
}

fn cannot_listen(port: u16, e: &std::io::Error) -> Error {
    Error::Network {
        url: format!("127.0.0.1:{port}"),
        reason: format!("cannot listen: {e}"),
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tessera</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:4rem auto;max-width:32rem;color:#222}}</style>\
         </head><body>{body}</body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    // Take what the peer still sends (the rest of an oversized head) until it closes, so
    // closing does not reset the connection before the peer has read the answer.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        let mut left = 4 * MAX_HEAD;
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `raw` and returns the whole answer (empty when the connection is just closed).
    async fn send(port: u16, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get(port: u16, target: &str) -> String {
        send(
            port,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await
    }

    fn status(answer: &str) -> &str {
        answer.lines().next().unwrap_or("")
    }

    #[tokio::test]
    async fn only_the_callback_with_the_expected_state_ends_the_wait() {
        let r = LoopbackReceiver::bind().await.unwrap();
        let port = r.port;
        assert_eq!(
            r.redirect_uri(),
            format!("http://127.0.0.1:{port}/callback")
        );
        let waiter = tokio::spawn(async move { r.receive_for("the-state").await });

        let silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        half.write_all(b"GET /callback?state=the-state&code=c HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let huge = format!(
            "GET /callback?state=the-state HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD + 10)
        );
        let junk: Vec<(Vec<u8>, &str)> = vec![
            (
                b"GET /favicon.ico HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 404",
            ),
            (
                b"GET /callback?state=zzz&code=c HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                b"GET /callback?code=c HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (b"GET /callback HTTP/1.1\r\n\r\n".to_vec(), "HTTP/1.1 400"),
            (
                b"GET /callback?state=the-state&state=zzz&code=c HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                b"GET /callback?state=The-State&code=c HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                b"POST /callback?state=the-state&code=c HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 404",
            ),
            (
                b"GET /callbackx?state=the-state HTTP/1.1\r\n\r\n".to_vec(),
                "HTTP/1.1 404",
            ),
            (
                b"GET /callback?state=the-state\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(), "HTTP/1.1 400"),
            (huge.into_bytes(), "HTTP/1.1 431"),
        ];
        for (raw, want) in &junk {
            let answer = send(port, raw).await;
            assert!(
                status(&answer).starts_with(want),
                "{:?} → {:?}",
                String::from_utf8_lossy(raw),
                status(&answer)
            );
        }
        assert!(
            get(port, "/callback?state=zzz&code=c")
                .await
                .contains("not waiting")
        );
        assert!(!waiter.is_finished(), "junk does not end the wait");

        let page = get(port, "/callback?error=%3Cscript%3E&state=the-state").await;
        assert!(status(&page).starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "error text is escaped");
        let url = waiter.await.unwrap().unwrap();
        assert!(url.ends_with("/callback?error=%3Cscript%3E&state=the-state"));
        drop((silent, half));
    }

    #[tokio::test]
    async fn a_mailed_link_is_recognised_by_its_own_parameter() {
        let r = LoopbackReceiver::bind().await.unwrap();
        let port = r.port;
        let waiter = tokio::spawn(async move { r.receive_with("nonce", "n-1").await });
        assert!(
            get(port, "/callback?code=other&nonce=n-2")
                .await
                .starts_with("HTTP/1.1 400")
        );
        assert!(
            get(port, "/callback?code=mine&nonce=n-1")
                .await
                .starts_with("HTTP/1.1 200")
        );
        let url = waiter.await.unwrap().unwrap();
        assert_eq!(query_param(&url, "code").as_deref(), Some("mine"));
    }

    #[tokio::test]
    async fn idle_connections_delay_the_callback_at_most_one_read_timeout() {
        let r = LoopbackReceiver::bind().await.unwrap();
        let port = r.port;
        let waiter = tokio::spawn(async move { r.receive_for("s").await });
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 4 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        let started = std::time::Instant::now();
        let answer = get(port, "/callback?state=s&code=c").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(waiter.await.unwrap().is_ok());
        assert!(
            started.elapsed() < READ_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_fixed_port_is_bound_or_named_as_taken() {
        let taken = LoopbackReceiver::bind().await.unwrap();
        let err = LoopbackReceiver::bind_port(taken.port).await.unwrap_err();
        assert_eq!(err.code(), "port_in_use");
        assert!(err.to_string().contains(&taken.port.to_string()), "{err}");
        let port = taken.port;
        drop(taken);
        let fixed = LoopbackReceiver::bind_port(port).await.unwrap();
        assert_eq!(
            fixed.redirect_uri(),
            format!("http://127.0.0.1:{port}/callback")
        );
    }
}
