//! The loopback redirect receiver (RFC 8252 §7.3): a listener on `127.0.0.1:<random port>`
//! (or the fixed port of a provider that matches redirect URLs exactly) that answers exactly
//! one `GET /callback` with a small "return to Tessera" page and hands the full callback URL
//! back. Other paths (favicon…) get 404 and do not end the wait.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};

/// A bound loopback listener waiting for the browser.
#[derive(Debug)]
pub struct LoopbackReceiver {
    listener: TcpListener,
    port: u16,
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

    /// Waits for the callback request and returns its full URL.
    pub async fn receive(self) -> Result<String> {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            if let Ok(Some(url)) = self.serve(stream).await {
                return Ok(url);
            }
        }
    }

    async fn serve(&self, mut stream: TcpStream) -> std::io::Result<Option<String>> {
        let mut buf = Vec::with_capacity(1024);
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            return Ok(None);
        }
        let head = String::from_utf8_lossy(&buf);
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if method != "GET" || !(target == "/callback" || target.starts_with("/callback?")) {
            respond(&mut stream, "404 Not Found", "Not found").await?;
            return Ok(None);
        }
        let url = format!("http://127.0.0.1:{}{target}", self.port);
        let failed = url::Url::parse(&url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.to_string())
        });
        let body = match failed {
            Some(error) => format!(
                "<h1>Sign-in did not complete</h1><p>The provider answered <code>{}</code>. Return to Tessera for details.</p>",
                escape(&error)
            ),
            None => "<h1>Tessera received your sign-in</h1><p>You can close this tab and return to Tessera.</p>".to_string(),
        };
        respond(&mut stream, "200 OK", &body).await?;
        Ok(Some(url))
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
    stream.shutdown().await
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

    async fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn receives_one_callback_and_ignores_other_paths() {
        let r = LoopbackReceiver::bind().await.unwrap();
        let port = r.port;
        assert_eq!(
            r.redirect_uri(),
            format!("http://127.0.0.1:{port}/callback")
        );
        let waiter = tokio::spawn(r.receive());
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let page = get(port, "/callback?error=%3Cscript%3E&state=s").await;
        assert!(page.contains("&lt;script&gt;"), "error text is escaped");
        let url = waiter.await.unwrap().unwrap();
        assert!(url.ends_with("/callback?error=%3Cscript%3E&state=s"));
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
