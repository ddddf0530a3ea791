//! A scripted OpenID provider inside the test process, for the adversarial suite.
//!
//! [`ScriptedIdp`] answers like a small, correct provider — discovery, JWKS, token (code and
//! refresh grants, optionally rotating refresh tokens), userinfo, introspection, revocation —
//! signing with the committed test key `key-a`. A test replaces any answer, once or for good,
//! with a hostile one ([`Answer`]): any status, headers and body, a truncated or 10 MB body, a
//! stall, a slow drip, a reset or closed connection. It starts in a millisecond and needs no
//! Node, so hundreds of cases stay fast and deterministic. [`Forge`] builds the tokens a case
//! needs, signed with the provider's key, an attacker's key, a symmetric secret or nothing.
//!
//! There is no login page: [`ScriptedIdp::authorize`] plays the person and the provider at
//! once, reading the authorization URL and handing back the redirect the browser would follow.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::{idp_dir, signing_key_pem};

/// The client id the scripted provider's tokens are issued to.
pub const CLIENT_ID: &str = "tessera-public";

/// The `kid` of the published P-256 key ([`Key::Ec`]).
pub const EC_KID: &str = "ec-1";

/// How the provider answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A complete HTTP answer.
    Body {
        status: u16,
        content_type: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Reads the request, then sends nothing until the client gives up.
    Stall,
    /// `200`, JSON, chunked (no length to refuse it by), then one byte every 100 ms, forever.
    Drip,
    /// Reads the request, then resets the connection (TCP RST).
    Reset,
    /// Reads the request, then closes the connection without a word.
    Close,
    /// `200` JSON of `len` bytes, chunked (no `Content-Length` to refuse it by).
    Chunked(usize),
}

impl Answer {
    /// `status` with a JSON body (any text: it need not be valid JSON).
    pub fn json(status: u16, body: impl Into<String>) -> Answer {
        Answer::typed(status, "application/json", body.into().into_bytes())
    }

    /// `status` with `body` of `content_type`.
    pub fn typed(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
        Answer::Body {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body,
        }
    }

    /// A web server's HTML error page (or, with a 2xx status, a captive portal's page).
    pub fn html(status: u16) -> Answer {
        Answer::typed(
            status,
            "text/html; charset=utf-8",
            b"<!doctype html><html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
                .to_vec(),
        )
    }

    /// `200` JSON of `len` bytes with its `Content-Length`.
    pub fn huge(len: usize) -> Answer {
        let mut body = b"{\"pad\":\"".to_vec();
        body.resize(len.saturating_sub(2), b'x');
        body.extend_from_slice(b"\"}");
        Answer::typed(200, "application/json", body)
    }

    /// A redirect elsewhere (which must never be followed).
    pub fn redirect(to: &str) -> Answer {
        Answer::Body {
            status: 302,
            content_type: String::new(),
            headers: vec![("Location".into(), to.into())],
            body: Vec::new(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(self, name: &str, value: &str) -> Answer {
        match self {
            Answer::Body {
                status,
                content_type,
                mut headers,
                body,
            } => {
                headers.push((name.into(), value.into()));
                Answer::Body {
                    status,
                    content_type,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }
}

/// How the provider treats refresh tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refresh {
    /// A refresh answers without a refresh token: the old one stays valid.
    #[default]
    Plain,
    /// Every refresh returns a new refresh token; a used one is `invalid_grant`.
    Rotating,
}

struct Grant {
    sub: String,
    nonce: Option<String>,
}

#[derive(Default)]
struct Script {
    once: HashMap<String, VecDeque<Answer>>,
    always: HashMap<String, Answer>,
    codes: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, String>,
    access_tokens: HashMap<String, String>,
    refresh: Refresh,
    counter: u64,
    issued: Vec<String>,
    hits: HashMap<String, usize>,
    discovery: Value,
    jwks: Value,
}

impl Script {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let value = format!("{prefix}-{}-{}", self.counter, random_hex());
        self.issued.push(value.clone());
        value
    }
}

fn random_hex() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{nanos}{:?}", std::thread::current().id()));
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// See the module docs. The listener stops when this is dropped.
pub struct ScriptedIdp {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub issuer: String,
    pub port: u16,
    script: Arc<Mutex<Script>>,
    forge: Forge,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedIdp {
    /// A provider whose refresh tokens do not rotate.
    pub async fn start() -> ScriptedIdp {
        ScriptedIdp::start_with(Refresh::Plain).await
    }

    pub async fn start_with(refresh: Refresh) -> ScriptedIdp {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the scripted provider");
        let port = listener.local_addr().expect("local address").port();
        let issuer = format!("http://127.0.0.1:{port}");
        let forge = Forge::new(&issuer);
        let script = Arc::new(Mutex::new(Script {
            refresh,
            discovery: discovery_document(&issuer),
            jwks: forge.jwks(),
            ..Script::default()
        }));
        let server = Server {
            script: script.clone(),
            forge: forge.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        ScriptedIdp {
            issuer,
            port,
            script,
            forge,
            task,
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `issuer + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The next request to `path` gets `answer` (queued after earlier ones).
    pub fn once(&self, path: &str, answer: Answer) {
        self.script()
            .once
            .entry(path.into())
            .or_default()
            .push_back(answer);
    }

    /// Every request to `path` gets `answer`, until [`ScriptedIdp::normal`].
    pub fn always(&self, path: &str, answer: Answer) {
        self.script().always.insert(path.into(), answer);
    }

    /// `path` answers as a correct provider again; queued answers are dropped.
    pub fn normal(&self, path: &str) {
        let mut s = self.script();
        s.always.remove(path);
        s.once.remove(path);
    }

    /// How many answers queued with [`ScriptedIdp::once`] for `path` are still waiting.
    pub fn pending(&self, path: &str) -> usize {
        self.script().once.get(path).map_or(0, VecDeque::len)
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.script().hits.get(path).copied().unwrap_or(0)
    }

    /// Every code and token this provider handed out, and every token [`Forge`] signed.
    pub fn issued(&self) -> Vec<String> {
        let mut all = self.script().issued.clone();
        all.extend(self.forge.signed());
        all
    }

    /// Replaces the discovery document (`/.well-known/openid-configuration`).
    pub fn set_discovery(&self, document: Value) {
        self.script().discovery = document;
    }

    /// The discovery document as served.
    pub fn discovery(&self) -> Value {
        self.script().discovery.clone()
    }

    /// The JWKS as served.
    pub fn jwks(&self) -> Value {
        self.script().jwks.clone()
    }

    /// Makes refresh tokens rotate (or not) from now on.
    pub fn set_refresh(&self, refresh: Refresh) {
        self.script().refresh = refresh;
    }

    /// Whether `refresh_token` is still good at the provider.
    pub fn refresh_token_alive(&self, refresh_token: &str) -> bool {
        self.script().refresh_tokens.contains_key(refresh_token)
    }

    pub fn forge(&self) -> &Forge {
        &self.forge
    }

    /// Plays the browser and the provider: signs `sub` in for the authorization URL and
    /// returns the redirect (`redirect_uri?code=…&state=…`) the browser would be sent to.
    pub fn authorize(&self, authorization_url: &str, sub: &str) -> String {
        let url = Url::parse(authorization_url).expect("an authorization URL");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let redirect = param("redirect_uri").expect("redirect_uri");
        let state = param("state").expect("state");
        let code = {
            let mut s = self.script();
            let code = s.next("code");
            s.codes.insert(
                code.clone(),
                Grant {
                    sub: sub.into(),
                    nonce: param("nonce"),
                },
            );
            code
        };
        let mut back = Url::parse(&redirect).expect("a redirect URI");
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
        back.to_string()
    }

    /// A correct token answer for `sub` (the tokens registered as this provider's), with an
    /// ID token carrying `nonce`; tests change fields of it to build hostile answers.
    pub fn token_answer(&self, sub: &str, nonce: Option<&str>) -> Value {
        let mut s = self.script();
        answer_tokens(&mut s, &self.forge, sub, nonce, true)
    }
}

/// The answer of a successful grant; registers the tokens.
fn answer_tokens(
    s: &mut Script,
    forge: &Forge,
    sub: &str,
    nonce: Option<&str>,
    with_refresh: bool,
) -> Value {
    let access = s.next("at");
    s.access_tokens.insert(access.clone(), sub.into());
    let mut claims = forge.id_claims(sub, nonce);
    claims["at_hash"] = at_hash(&access).into();
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "openid profile email offline_access",
        "id_token": forge.sign(&forge.header(), &claims, &Key::A),
    });
    if with_refresh {
        let rt = s.next("rt");
        s.refresh_tokens.insert(rt.clone(), sub.into());
        answer["refresh_token"] = rt.into();
    }
    answer
}

/// OIDC Core 3.1.3.6 for RS256.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/me"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "subject_types_supported": ["public"],
    })
}

/// One request as the server read it.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    fn bearer(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
    }
}

const MAX_HEAD: usize = 1024 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

#[derive(Clone)]
struct Server {
    script: Arc<Mutex<Script>>,
    forge: Forge,
}

impl Server {
    async fn serve(&self, mut stream: TcpStream) {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let answer = self.answer(&request);
        match answer {
            Answer::Body {
                status,
                content_type,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                if !content_type.is_empty() {
                    head.push_str(&format!("Content-Type: {content_type}\r\n"));
                }
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            }
            Answer::Stall => {
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            Answer::Drip => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if stream.write_all(b"1\r\n \r\n").await.is_err() {
                        return;
                    }
                }
            }
            Answer::Reset => {
                let _ = stream.set_zero_linger();
                drop(stream);
            }
            Answer::Close => drop(stream),
            Answer::Chunked(len) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < len {
                    let frame =
                        [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                    sent += piece.len();
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        }
    }

    fn answer(&self, request: &Request) -> Answer {
        let mut s = self.script.lock().unwrap_or_else(|p| p.into_inner());
        *s.hits.entry(request.path.clone()).or_default() += 1;
        if let Some(a) = s.once.get_mut(&request.path).and_then(VecDeque::pop_front) {
            return a;
        }
        if let Some(a) = s.always.get(&request.path) {
            return a.clone();
        }
        let ok = |v: Value| Answer::json(200, v.to_string());
        let oauth_error =
            |status, error: &str| Answer::json(status, json!({"error": error}).to_string());
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => ok(s.discovery.clone()),
            ("GET", "/jwks") => ok(s.jwks.clone()),
            ("POST", "/token") => {
                let form = request.form();
                match form.get("grant_type").map(String::as_str) {
                    Some("authorization_code") => {
                        let code = form.get("code").cloned().unwrap_or_default();
                        match s.codes.remove(&code) {
                            Some(g) => ok(answer_tokens(
                                &mut s,
                                &self.forge,
                                &g.sub,
                                g.nonce.as_deref(),
                                true,
                            )),
                            None => oauth_error(400, "invalid_grant"),
                        }
                    }
                    Some("refresh_token") => {
                        let rt = form.get("refresh_token").cloned().unwrap_or_default();
                        let Some(sub) = s.refresh_tokens.get(&rt).cloned() else {
                            return oauth_error(400, "invalid_grant");
                        };
                        let rotate = s.refresh == Refresh::Rotating;
                        if rotate {
                            s.refresh_tokens.remove(&rt);
                        }
                        ok(answer_tokens(&mut s, &self.forge, &sub, None, rotate))
                    }
                    _ => oauth_error(400, "unsupported_grant_type"),
                }
            }
            ("GET", "/me") => match request.bearer().and_then(|t| s.access_tokens.get(t)) {
                Some(sub) => ok(json!({"sub": sub, "email": format!("{sub}@example.com")})),
                None => oauth_error(401, "invalid_token"),
            },
            ("POST", "/introspect") => {
                let token = request.form().get("token").cloned().unwrap_or_default();
                match s.access_tokens.get(&token) {
                    Some(sub) => ok(json!({"active": true, "sub": sub, "client_id": CLIENT_ID})),
                    None => ok(json!({"active": false})),
                }
            }
            ("POST", "/revoke") => {
                let token = request.form().get("token").cloned().unwrap_or_default();
                s.refresh_tokens.remove(&token);
                Answer::typed(200, "", Vec::new())
            }
            _ => oauth_error(404, "not_found"),
        }
    }
}

/// A key to sign a forged token with.
#[derive(Debug, Clone)]
pub enum Key {
    /// The provider's own RS256 key, published as `key-a`.
    A,
    /// An attacker's RS256 key (the test key `b`, not published by this provider).
    B,
    /// The provider's published P-256 key, `ec-1`.
    Ec,
    /// A symmetric secret.
    Hmac(Vec<u8>),
    /// No signature at all (an empty third part).
    Unsigned,
}

/// Builds tokens for one provider: its claims, its keys, and the attacker's.
#[derive(Clone)]
pub struct Forge {
    issuer: String,
    a: Arc<EncodingKey>,
    b: Arc<EncodingKey>,
    ec: Arc<EncodingKey>,
    signed: Arc<Mutex<Vec<String>>>,
}

/// RFC 7515 appendix A.3's P-256 key (public test vector).
const EC_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

fn public_jwk(name: &str) -> Value {
    let path = idp_dir().join("keys").join(format!("signing-{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut jwk: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("a JWK");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        jwk.remove(private);
    }
    Value::Object(jwk)
}

impl Forge {
    fn new(issuer: &str) -> Forge {
        let rsa = |name: &str| {
            Arc::new(
                EncodingKey::from_rsa_pem(signing_key_pem(name).as_bytes())
                    .expect("the test signing key"),
            )
        };
        let ec = {
            use p256::pkcs8::EncodePrivateKey;
            let d = URL_SAFE_NO_PAD.decode(EC_D).expect("base64url");
            let key = p256::SecretKey::from_slice(&d).expect("a P-256 key");
            let der = key.to_pkcs8_der().expect("PKCS#8");
            Arc::new(EncodingKey::from_ec_der(der.as_bytes()))
        };
        Forge {
            issuer: issuer.into(),
            a: rsa("a"),
            b: rsa("b"),
            ec,
            signed: Arc::default(),
        }
    }

    /// The provider's JWKS: `key-a` (RS256) and `ec-1` (P-256).
    pub fn jwks(&self) -> Value {
        json!({"keys": [public_jwk("a"), self.ec_jwk()]})
    }

    /// The public JWK of the attacker's key `key-b`.
    pub fn attacker_jwk(&self) -> Value {
        public_jwk("b")
    }

    /// The public JWK of `key-a`.
    pub fn provider_jwk(&self) -> Value {
        public_jwk("a")
    }

    pub fn ec_jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": EC_KID, "use": "sig"})
    }

    /// `key-a`'s public key as PEM (SubjectPublicKeyInfo), the classic HMAC-confusion secret.
    pub fn provider_public_pem(&self) -> String {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
        rsa::RsaPrivateKey::from_pkcs8_pem(&signing_key_pem("a"))
            .expect("the test key")
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM")
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The header of a correctly signed token: RS256, `key-a`.
    pub fn header(&self) -> Value {
        json!({"alg": "RS256", "kid": "key-a", "typ": "JWT"})
    }

    /// The claims of a correct ID token for `sub`, valid for an hour from now.
    pub fn id_claims(&self, sub: &str, nonce: Option<&str>) -> Value {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": CLIENT_ID,
            "exp": now + 3600,
            "iat": now,
            "email": format!("{sub}@example.com"),
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        claims
    }

    /// `header` and `claims` serialized, base64url-encoded and signed with `key` under the
    /// algorithm the header names (RS256 for [`Key::A`]/[`Key::B`], ES256 for [`Key::Ec`],
    /// HS256 for [`Key::Hmac`] when the header names none it can use).
    pub fn sign(&self, header: &Value, claims: &Value, key: &Key) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string(), key)
    }

    /// Like [`Forge::sign`] with the JSON texts as given (duplicate keys, odd spacing…).
    pub fn sign_raw(&self, header: &str, claims: &str, key: &Key) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = self.signature(&input, header, key);
        let token = format!("{input}.{signature}");
        self.signed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(token.clone());
        token
    }

    /// The signature of `input` with `key` (the header picks RSA-PSS or the HMAC hash).
    pub fn signature(&self, input: &str, header: &str, key: &Key) -> String {
        let named = serde_json::from_str::<Value>(header)
            .ok()
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(String::from))
            .and_then(|a| a.parse::<Algorithm>().ok());
        let hmac;
        let (encoding, alg): (&EncodingKey, Algorithm) = match key {
            Key::A | Key::B => {
                let alg = match named {
                    Some(
                        a @ (Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512),
                    ) => a,
                    _ => Algorithm::RS256,
                };
                (
                    if matches!(key, Key::A) {
                        self.a.as_ref()
                    } else {
                        self.b.as_ref()
                    },
                    alg,
                )
            }
            Key::Ec => (self.ec.as_ref(), Algorithm::ES256),
            Key::Hmac(secret) => {
                hmac = EncodingKey::from_secret(secret);
                let alg = match named {
                    Some(a @ (Algorithm::HS384 | Algorithm::HS512)) => a,
                    _ => Algorithm::HS256,
                };
                (&hmac, alg)
            }
            Key::Unsigned => return String::new(),
        };
        jsonwebtoken::crypto::sign(input.as_bytes(), encoding, alg).expect("signing")
    }

    /// Every token this forge signed.
    pub fn signed(&self) -> Vec<String> {
        self.signed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Unix seconds on the wall clock.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
