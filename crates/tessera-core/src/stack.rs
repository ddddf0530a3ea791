//! The Stack Auth adapter: Stack Auth is not OpenID Connect but a REST API (`/api/v1`) with
//! an OAuth-shaped token endpoint and a per-project ES256 JWKS. Every request carries the
//! project headers (`x-stack-project-id`, `x-stack-access-type: client`, the publishable
//! key); errors are `x-stack-known-error` codes, surfaced as [`Error::Provider`] with that
//! code. Refresh returns only an access token (refresh tokens never rotate); teams are the
//! organizations, and the selected team is a user attribute carried in the access token.
//! Besides password and mailed-code sign-in there is OAuth through the browser (a social
//! provider chosen per sign-in), which runs on the OpenID flows' pending-flow table.

use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::account::Account;
use crate::error::{Error, Result};
use crate::http::{HttpClient, Response, parse_json};
use crate::jwt::{Expectations, TokenKind, decode_unverified_for_display};
use crate::provider::{ProviderConfig, ProviderKind, ProviderMetadata, STACK_DEFAULT_BASE};
use crate::secret::SecretString;
use crate::tessera::Tessera;
use crate::vault::{Slot, TokenSet};

/// The sign-in parameter naming the OAuth provider (`github`, `google`, …) of a browser
/// sign-in.
pub const OAUTH_PROVIDER_PARAM: &str = "oauth_provider";

/// How long a mailed sign-in code is offered for typing (Stack's own expiry may be shorter).
const MAILED_CODE_TTL: u64 = 3600;

/// Stack's client secret for projects that require no publishable key.
const PUBLIC_CLIENT: &str = "__stack_public_client__";

/// Requests to one Stack Auth project.
pub struct StackApi<'a> {
    pub config: &'a ProviderConfig,
    pub http: &'a HttpClient,
    pub now: u64,
}

/// A team, as `GET /teams?user_id=me` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Team {
    pub id: String,
    pub display_name: Option<String>,
}

#[derive(Deserialize)]
struct SignedIn {
    access_token: String,
    refresh_token: String,
}

impl StackApi<'_> {
    fn url(&self, path: &str) -> String {
        let base = self
            .config
            .api_base
            .as_deref()
            .unwrap_or(STACK_DEFAULT_BASE);
        format!("{}/api/v1{path}", base.trim_end_matches('/'))
    }

    fn project(&self) -> &str {
        self.config
            .project_id
            .as_deref()
            .unwrap_or(&self.config.client_id)
    }

    /// The publishable key, or Stack's stand-in where the project needs none.
    fn client_secret(&self) -> &str {
        self.config.client_key.as_deref().unwrap_or(PUBLIC_CLIENT)
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
        access_token: Option<&SecretString>,
        refresh_token: Option<&SecretString>,
    ) -> Result<Value> {
        let url = self.url(path);
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("accept", "application/json")
            .header("x-stack-project-id", self.project())
            .header("x-stack-access-type", "client");
        if let Some(key) = &self.config.client_key {
            request = request.header("x-stack-publishable-client-key", key);
        }
        if let Some(at) = access_token {
            request = request.header("x-stack-access-token", at.expose_secret());
        }
        if let Some(rt) = refresh_token {
            request = request.header("x-stack-refresh-token", rt.expose_secret());
        }
        let body = match (body, method == http::Method::GET) {
            (_, true) => Vec::new(),
            (Some(b), false) => b.to_string().into_bytes(),
            (None, false) => b"{}".to_vec(),
        };
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        self.send(&url, request, body).await
    }

    /// Sends a request answered with JSON: the value on success, else Stack's error.
    async fn send(
        &self,
        url: &str,
        request: http::request::Builder,
        body: Vec<u8>,
    ) -> Result<Value> {
        let request = request
            .body(body)
            .map_err(|e| Error::InvalidConfig(format!("bad Stack Auth URL {url}: {e}")))?;
        let response = self.http.send_expecting_json(request).await?;
        if (200..300).contains(&response.status) {
            return parse_json(url, &response.body);
        }
        Err(failure(url, &response))
    }

    fn tokens(&self, access_token: String, refresh_token: Option<SecretString>) -> TokenSet {
        let expires_at = decode_unverified_for_display(&access_token)
            .ok()
            .and_then(|d| d.claim_u64("exp"));
        TokenSet {
            access_token: SecretString::new(access_token),
            token_type: "Bearer".into(),
            expires_at,
            refresh_token,
            id_token: None,
            scope: None,
            nonce: None,
            id_token_matches_access_token: false,
            obtained_at: self.now,
        }
    }

    fn signed_in(&self, value: Value) -> Result<TokenSet> {
        let s: SignedIn = serde_json::from_value(value).map_err(|e| Error::MalformedResponse {
            url: self.url("/auth"),
            reason: e.to_string(),
        })?;
        Ok(self.tokens(s.access_token, Some(SecretString::new(s.refresh_token))))
    }

    /// `POST /auth/password/sign-in`.
    pub async fn password_sign_in(&self, email: &str, password: &SecretString) -> Result<TokenSet> {
        let body = json!({"email": email, "password": password.expose_secret()});
        let v = self
            .call(
                http::Method::POST,
                "/auth/password/sign-in",
                Some(body),
                None,
                None,
            )
            .await?;
        self.signed_in(v)
    }

    /// `POST /auth/otp/send-sign-in-code`: mails a link `callback_url?code=…`.
    /// Returns the `nonce` that, after the six characters shown in the mail, makes up the
    /// whole code.
    pub async fn send_sign_in_code(&self, email: &str, callback_url: &str) -> Result<SecretString> {
        let body = json!({"email": email, "callback_url": callback_url});
        let v = self
            .call(
                http::Method::POST,
                "/auth/otp/send-sign-in-code",
                Some(body),
                None,
                None,
            )
            .await?;
        v.get("nonce")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(|n| SecretString::new(n.to_string()))
            .ok_or_else(|| Error::MalformedResponse {
                url: self.url("/auth/otp/send-sign-in-code"),
                reason: "no nonce".into(),
            })
    }

    /// `POST /auth/otp/sign-in` with the code from the mailed link.
    pub async fn code_sign_in(&self, code: &SecretString) -> Result<TokenSet> {
        let body = json!({"code": code.expose_secret()});
        let v = self
            .call(
                http::Method::POST,
                "/auth/otp/sign-in",
                Some(body),
                None,
                None,
            )
            .await?;
        self.signed_in(v)
    }

    /// `POST /auth/sessions/current/refresh`: a new access token; the refresh token stays.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        let v = self
            .call(
                http::Method::POST,
                "/auth/sessions/current/refresh",
                None,
                None,
                Some(refresh_token),
            )
            .await?;
        let at = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::MalformedResponse {
                url: self.url("/auth/sessions/current/refresh"),
                reason: "no access_token".into(),
            })?;
        Ok(self.tokens(at.to_string(), Some(refresh_token.clone())))
    }

    /// `GET /teams?user_id=me`.
    pub async fn teams(&self, access_token: &SecretString) -> Result<Vec<Team>> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<Team>,
        }
        let v = self
            .call(
                http::Method::GET,
                "/teams?user_id=me",
                None,
                Some(access_token),
                None,
            )
            .await?;
        let items: Items = serde_json::from_value(v).map_err(|e| Error::MalformedResponse {
            url: self.url("/teams"),
            reason: e.to_string(),
        })?;
        Ok(items.items)
    }

    /// `PATCH /users/me {selected_team_id}`.
    pub async fn select_team(&self, access_token: &SecretString, team: &str) -> Result<()> {
        let body = json!({"selected_team_id": team});
        self.call(
            http::Method::PATCH,
            "/users/me",
            Some(body),
            Some(access_token),
            None,
        )
        .await?;
        Ok(())
    }

    /// `DELETE /auth/sessions/current`: ends the session the access token belongs to.
    pub async fn sign_out(&self, access_token: &SecretString) -> Result<()> {
        self.call(
            http::Method::DELETE,
            "/auth/sessions/current",
            None,
            Some(access_token),
            None,
        )
        .await?;
        Ok(())
    }

    /// The URL that starts a sign-in through the OAuth provider named by the `oauth_provider`
    /// parameter (`GET /auth/oauth/authorize/{provider}`, the remaining `params` added as
    /// they are). Stack answers a provider the project does not offer, a wrong key or a
    /// return address it does not trust with an error page in the browser, so the URL is
    /// requested once here, without following its redirect, to report those as errors
    /// before the browser opens.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: PkceCodeChallenge,
        params: &[(String, String)],
    ) -> Result<Url> {
        let oauth_provider = params
            .iter()
            .rev()
            .find(|(k, _)| k == OAUTH_PROVIDER_PARAM)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "a Stack Auth sign-in through the browser needs an OAuth provider \
                     (github, google, …) in the \"{OAUTH_PROVIDER_PARAM}\" parameter"
                ))
            })?;
        if params.iter().any(|(k, _)| k == "grant_type") {
            return Err(Error::InvalidConfig(
                "\"grant_type\" is set by Tessera itself".into(),
            ));
        }
        let endpoint = self.url("/auth/oauth/authorize");
        let mut url = Url::parse(&endpoint)
            .map_err(|e| Error::InvalidConfig(format!("bad Stack Auth URL {endpoint}: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| Error::InvalidConfig(format!("bad Stack Auth URL {endpoint}")))?
            .push(oauth_provider);
        url.query_pairs_mut()
            .append_pair("client_id", self.project())
            .append_pair("client_secret", self.client_secret())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "legacy")
            .append_pair("state", state)
            .append_pair("grant_type", "authorization_code")
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", challenge.method())
            .append_pair("response_type", "code")
            .extend_pairs(params.iter().filter(|(k, _)| k != OAUTH_PROVIDER_PARAM));
        let shown = format!("{endpoint}/{oauth_provider}");
        let request = http::Request::get(url.as_str())
            .body(Vec::new())
            .map_err(|e| Error::InvalidConfig(format!("bad Stack Auth URL {shown}: {e}")))?;
        let response = self.http.send(request).await?;
        if (300..400).contains(&response.status) {
            return Ok(url);
        }
        Err(failure(&shown, &response))
    }

    /// `POST /auth/oauth/token` (form): the code a browser sign-in came back with, and its
    /// PKCE verifier, for the session's tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let url = self.url("/auth/oauth/token");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier.secret())
            .append_pair("client_id", self.project())
            .append_pair("client_secret", self.client_secret())
            .finish();
        let request = http::Request::post(&url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded");
        let v = self.send(&url, request, form.into_bytes()).await?;
        self.signed_in(v)
    }
}

/// Turns an error answer into Stack's known error (`{code, error}`, also named by the
/// `x-stack-known-error` header), else an OAuth error or the bare status.
fn failure(url: &str, response: &Response) -> Error {
    #[derive(Deserialize)]
    struct KnownError {
        code: String,
        /// Stack's own field; some documentation calls it `message`.
        #[serde(alias = "message")]
        error: Option<String>,
    }
    let known = response
        .headers
        .get("x-stack-known-error")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match (known, serde_json::from_slice::<KnownError>(&response.body)) {
        (_, Ok(e)) => {
            let said = e.error.unwrap_or_default();
            Error::Provider {
                description: Some(match explain(&e.code) {
                    Some(hint) if said.is_empty() => hint.to_string(),
                    Some(hint) => format!("{said} {hint}"),
                    None => said,
                })
                .filter(|d| !d.is_empty()),
                error: e.code,
            }
        }
        (Some(code), Err(_)) => Error::Provider {
            error: code,
            description: None,
        },
        (None, Err(_)) => crate::http::oauth_error_or_status(url, response),
    }
}

fn explain(code: &str) -> Option<&'static str> {
    Some(match code {
        "MULTI_FACTOR_AUTHENTICATION_REQUIRED" => {
            "This account needs a one-time code from an authenticator app, which Tessera cannot ask for yet; sign in by e-mail code or OAuth instead."
        }
        "EMAIL_PASSWORD_MISMATCH" => "Check the e-mail address and password.",
        "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED" => "The session ended; sign in again.",
        "INVALID_PUBLISHABLE_CLIENT_KEY" | "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT" => {
            "Check the provider's publishable client key."
        }
        "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED" => {
            "Pick an OAuth provider the Stack Auth project has enabled."
        }
        "REDIRECT_URL_NOT_WHITELISTED" => {
            "Stack Auth returns only to loopback addresses and the project's trusted domains."
        }
        _ => return None,
    })
}

impl StackApi<'_> {
    /// `GET /users/me`.
    pub async fn me(&self, access_token: &SecretString) -> Result<Value> {
        self.call(
            http::Method::GET,
            "/users/me",
            None,
            Some(access_token),
            None,
        )
        .await
    }
}

impl Tessera {
    fn stack_provider(&self, config: &ProviderConfig, what: &str) -> Result<()> {
        if config.kind != ProviderKind::StackAuth {
            return Err(Error::Unsupported(format!("{what} at \"{}\"", config.name)));
        }
        Ok(())
    }

    /// Stack Auth: signs in with e-mail and password, inside Tessera.
    pub async fn sign_in_with_password(
        &self,
        provider: &str,
        email: &str,
        password: &SecretString,
    ) -> Result<Account> {
        let (config, metadata, _) = self.provider_context(provider).await?;
        self.stack_provider(&config, "password sign-in")?;
        let tokens = self
            .stack(&config)
            .password_sign_in(email, password)
            .await?;
        self.store_stack_sign_in(&config, &metadata, tokens).await
    }

    /// Stack Auth: mails a sign-in link (`callback_url?code=…`) to `email`, with the
    /// six-character code of [`Tessera::sign_in_with_mailed_code`] in it.
    pub async fn send_sign_in_code(
        &self,
        provider: &str,
        email: &str,
        callback_url: &str,
    ) -> Result<()> {
        let config = self.provider(provider)?;
        self.stack_provider(&config, "e-mail code sign-in")?;
        let nonce = self
            .stack(&config)
            .send_sign_in_code(email, callback_url)
            .await?;
        if let Ok(mut sent) = self.mailed_codes.lock() {
            sent.insert(config.name, (nonce, self.now()));
        }
        Ok(())
    }

    /// Stack Auth: signs in with the six characters the mail shows, which complete the code
    /// the last [`Tessera::send_sign_in_code`] to `provider` began. A wrong code may be typed
    /// again; the code works once.
    pub async fn sign_in_with_mailed_code(&self, provider: &str, typed: &str) -> Result<Account> {
        let typed = typed.trim().to_uppercase();
        if typed.len() != 6 || !typed.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::InvalidConfig(
                "the code from the mail has six letters and digits".into(),
            ));
        }
        let nonce = {
            let sent = self.mailed_codes.lock().map_err(|_| Error::UnknownState)?;
            match sent.get(provider) {
                Some((nonce, at)) if self.now().saturating_sub(*at) <= MAILED_CODE_TTL => {
                    nonce.expose_secret().to_string()
                }
                Some(_) => return Err(Error::FlowExpired),
                None => return Err(Error::UnknownState),
            }
        };
        self.sign_in_with_code(provider, &SecretString::new(format!("{typed}{nonce}")))
            .await
    }

    /// Stack Auth: signs in with the code from the mailed link (or the typed one completed).
    pub async fn sign_in_with_code(&self, provider: &str, code: &SecretString) -> Result<Account> {
        let (config, metadata, _) = self.provider_context(provider).await?;
        self.stack_provider(&config, "e-mail code sign-in")?;
        let tokens = self.stack(&config).code_sign_in(code).await?;
        // Used, by link or by typing: the mail's code cannot be typed any more.
        if let Ok(mut sent) = self.mailed_codes.lock() {
            sent.remove(provider);
        }
        self.store_stack_sign_in(&config, &metadata, tokens).await
    }

    /// Verifies a Stack sign-in's access token and stores the account with its selected team.
    pub(crate) async fn store_stack_sign_in(
        &self,
        config: &ProviderConfig,
        metadata: &ProviderMetadata,
        tokens: TokenSet,
    ) -> Result<Account> {
        let expect = Expectations {
            kind: TokenKind::AccessToken,
            issuer: &metadata.issuer,
            audience: config.audience.as_deref(),
            client_id: &config.client_id,
            nonce: None,
            access_token: None,
            now: self.now(),
        };
        let claims = self
            .verify(metadata, tokens.access_token.expose_secret(), &expect)
            .await?
            .into_result("access token")?;
        let account = self.store_account(config, metadata, tokens, &claims, Slot::Main)?;
        match claims.claim_str("selected_team_id") {
            Some(team) => self.update_account(&account.id, |a| {
                if !a.orgs.iter().any(|o| o == team) {
                    a.orgs.push(team.to_string());
                }
                a.current_org = Some(team.to_string());
            }),
            None => Ok(account),
        }
    }

    /// Stack Auth: the person's teams, refreshed from the API into the account's metadata.
    pub(crate) async fn stack_teams(&self, account: &Account) -> Result<Account> {
        let config = self.provider(&account.provider)?;
        let token = self.access_token(&account.id, 30, false).await?;
        let teams = self.stack(&config).teams(&token.token).await?;
        self.update_account(&account.id, |a| {
            a.orgs = teams.iter().map(|t| t.id.clone()).collect();
            for t in &teams {
                if let Some(name) = &t.display_name {
                    a.org_names.insert(t.id.clone(), name.clone());
                }
            }
        })
    }

    /// Stack Auth: selects a team (`PATCH /users/me`) and refreshes so the access token
    /// carries it.
    pub(crate) async fn stack_switch(&self, account: &Account, team: &str) -> Result<Account> {
        let config = self.provider(&account.provider)?;
        let token = self.access_token(&account.id, 30, false).await?;
        self.stack(&config).select_team(&token.token, team).await?;
        self.refresh(&account.id).await?;
        self.account(&account.id)
    }

    /// Stack Auth: ends the session at the provider. A session that is already gone counts
    /// as ended.
    pub(crate) async fn stack_sign_out(&self, account: &Account) -> Result<bool> {
        let config = self.provider(&account.provider)?;
        let token = match self.access_token(&account.id, 30, false).await {
            Ok(t) => t,
            Err(Error::NeedsSignIn(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.stack(&config).sign_out(&token.token).await {
            Ok(()) => Ok(true),
            Err(e) if e.grant_is_gone() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
