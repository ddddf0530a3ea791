//! Requests to one Stack Auth project's REST API (`/api/v1`). Every request carries the
//! project headers (`x-stack-project-id`, `x-stack-access-type: client`, the publishable
//! key); failures become Stack's known errors ([`super::error`]).

use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::error::failure;
use super::{OAUTH_PROVIDER_PARAM, STACK_DEFAULT_BASE};
use crate::error::{Error, Result};
use crate::http::{HttpClient, parse_json};
use crate::jwt::decode_unverified_for_display;
use crate::provider::ProviderConfig;
use crate::secret::SecretString;
use crate::vault::TokenSet;

/// Stack's client secret for projects that require no publishable key.
const PUBLIC_CLIENT: &str = "__stack_public_client__";

/// Requests to one Stack Auth project.
pub(super) struct StackApi<'a> {
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
