//! Requests to a provider's OAuth endpoints: code exchange, refresh and the device grant
//! through `oauth2`, with our own [`HttpClient`] as its transport; revocation (RFC 7009),
//! introspection (RFC 7662) and userinfo as plain requests (oauth2 refuses `http` revocation
//! URLs, which local providers use). Client authentication — none, `client_secret_basic`,
//! `client_secret_post` or `private_key_jwt` (RFC 7523, a fresh assertion per request) — is
//! applied the same way to all of them.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::assertion::client_assertion;
use crate::error::{Error, Result};
use crate::http::{HttpClient, oauth_error_or_status, parse_json};
use crate::provider::{ClientAuth, ProviderConfig, ProviderMetadata};
use crate::providers::Context;
use crate::secret::SecretString;
use crate::vault::TokenSet;

/// The token response with OpenID Connect's `id_token`.
#[derive(Clone, Deserialize, Serialize, Default)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Everything needed to talk to one provider on behalf of its client.
pub(crate) struct Endpoint<'a> {
    pub config: &'a ProviderConfig,
    pub metadata: &'a ProviderMetadata,
    /// Client secret or private key, from the keychain.
    pub credential: Option<&'a SecretString>,
    pub http: &'a HttpClient,
    pub now: u64,
}

/// A device authorization in progress (RFC 8628).
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
    pub(crate) details: StandardDeviceAuthorizationResponse,
}

impl<'a> Endpoint<'a> {
    pub fn new(ctx: &Context<'a>) -> Self {
        Endpoint {
            config: ctx.config,
            metadata: ctx.metadata,
            credential: ctx.credential,
            http: ctx.http,
            now: ctx.now,
        }
    }
}

fn url_error(what: &str, e: impl fmt::Display) -> Error {
    Error::Discovery(format!("bad {what} URL: {e}"))
}

impl Endpoint<'_> {
    fn client(&self) -> Result<OAuthClient> {
        let auth = AuthUrl::new(self.metadata.authorization_endpoint.clone())
            .map_err(|e| url_error("authorization", e))?;
        let token = TokenUrl::new(self.metadata.token_endpoint.clone())
            .map_err(|e| url_error("token", e))?;
        let device = self
            .metadata
            .device_authorization_endpoint
            .clone()
            .map(DeviceAuthorizationUrl::new)
            .transpose()
            .map_err(|e| url_error("device authorization", e))?;
        let mut client = oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_device_authorization_url_option(device)
            .set_auth_type(oauth2::AuthType::RequestBody);
        match self.config.client_auth {
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
                let secret = self.credential.ok_or_else(|| {
                    Error::Keychain(format!(
                        "the client secret of \"{}\" is not in the keychain",
                        self.config.name
                    ))
                })?;
                client =
                    client.set_client_secret(ClientSecret::new(secret.expose_secret().to_string()));
                if self.config.client_auth == ClientAuth::ClientSecretBasic {
                    client = client.set_auth_type(oauth2::AuthType::BasicAuth);
                }
            }
            ClientAuth::None | ClientAuth::PrivateKeyJwt => {}
        }
        Ok(client)
    }

    /// `client_assertion` parameters for `private_key_jwt`, empty otherwise.
    fn assertion_params(&self, audience: &str) -> Result<Vec<(String, String)>> {
        if self.config.client_auth != ClientAuth::PrivateKeyJwt {
            return Ok(Vec::new());
        }
        let key = self.credential.ok_or_else(|| {
            Error::Keychain(format!(
                "the private key of \"{}\" is not in the keychain",
                self.config.name
            ))
        })?;
        let assertion = client_assertion(
            &self.config.client_id,
            audience,
            key,
            self.config.key_id.as_deref(),
            self.now,
        )?;
        Ok(vec![
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), assertion),
        ])
    }

    /// The authorization URL for a browser sign-in.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: PkceCodeChallenge,
        extra: &[(String, String)],
    ) -> Result<Url> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| url_error("redirect", e))?;
        let client = self.client()?.set_redirect_uri(redirect);
        let state = state.to_string();
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.config.scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce);
        for (k, v) in self.authorization_params(extra) {
            request = request.add_extra_param(k, v);
        }
        Ok(request.url().0)
    }

    fn authorization_params(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut params = Vec::new();
        if let Some(aud) = &self.config.audience {
            params.push(("audience".to_string(), aud.clone()));
        }
        for r in &self.config.resources {
            params.push(("resource".to_string(), r.clone()));
        }
        params.extend(
            self.config
                .extra_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        params.extend(extra.iter().cloned());
        params
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| url_error("redirect", e))?;
        let client = self.client()?.set_redirect_uri(redirect);
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(verifier);
        for (k, v) in self.assertion_params(&self.metadata.token_endpoint)? {
            request = request.add_extra_param(k, v);
        }
        let response = request
            .request_async(&transport(self.http))
            .await
            .map_err(|e| self.token_error(e))?;
        Ok(token_set(response, self.now, None))
    }

    /// Uses a refresh token. The returned set keeps `previous` when none comes back.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        extra: &[(String, String)],
    ) -> Result<TokenSet> {
        let client = self.client()?;
        let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
        let mut request = client.exchange_refresh_token(&rt);
        for (k, v) in self
            .assertion_params(&self.metadata.token_endpoint)?
            .into_iter()
            .chain(extra.iter().cloned())
        {
            request = request.add_extra_param(k, v);
        }
        let response = request
            .request_async(&transport(self.http))
            .await
            .map_err(|e| self.token_error(e))?;
        Ok(token_set(response, self.now, Some(refresh_token)))
    }

    /// Starts a device authorization (RFC 8628 §3.1).
    pub async fn start_device(&self) -> Result<DeviceAuthorization> {
        if self.config.client_auth == ClientAuth::PrivateKeyJwt {
            return Err(Error::Unsupported(
                "the device grant for private_key_jwt clients".into(),
            ));
        }
        let client = self.client()?;
        let mut request = client
            .exchange_device_code()
            .map_err(|_| Error::Unsupported("the device authorization grant".into()))?
            .add_scopes(self.config.scopes.iter().map(|s| Scope::new(s.clone())));
        for (k, v) in self.authorization_params(&[]) {
            request = request.add_extra_param(k, v);
        }
        let details: StandardDeviceAuthorizationResponse = request
            .request_async(&transport(self.http))
            .await
            .map_err(|e| self.token_error(e))?;
        Ok(DeviceAuthorization {
            user_code: details.user_code().secret().clone(),
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            expires_in: details.expires_in(),
            interval: details.interval(),
            details,
        })
    }

    /// Polls the token endpoint until the person approves, denies, or the code expires
    /// (`authorization_pending` keeps the interval, `slow_down` adds 5 s).
    pub async fn finish_device(&self, device: &DeviceAuthorization) -> Result<TokenSet> {
        let client = self.client()?;
        let request = client.exchange_device_access_token(&device.details);
        let response = request
            .request_async(
                &transport(self.http),
                tokio::time::sleep,
                Some(device.expires_in),
            )
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => Error::Provider {
                    error: r.error().to_string(),
                    description: r.error_description().cloned(),
                },
                RequestTokenError::Request(e) => e,
                RequestTokenError::Parse(e, _) => self.malformed(e.to_string()),
                RequestTokenError::Other(s) if s.contains("timed out") || s.contains("timeout") => {
                    Error::timeout("the device approval")
                }
                RequestTokenError::Other(s) => self.malformed(s),
            })?;
        Ok(token_set(response, self.now, None))
    }

    /// Revokes a refresh token (RFC 7009).
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<()> {
        let endpoint = self
            .metadata
            .revocation_endpoint
            .as_deref()
            .ok_or_else(|| Error::Unsupported("token revocation".into()))?;
        let params = vec![
            (
                "token".to_string(),
                refresh_token.expose_secret().to_string(),
            ),
            ("token_type_hint".to_string(), "refresh_token".to_string()),
        ];
        let response = self.post_form(endpoint, params).await?;
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        Err(oauth_error_or_status(endpoint, &response))
    }

    /// Introspects a token (RFC 7662).
    pub async fn introspect(&self, token: &SecretString, hint: &str) -> Result<Value> {
        let endpoint = self
            .metadata
            .introspection_endpoint
            .as_deref()
            .ok_or_else(|| Error::Unsupported("token introspection".into()))?;
        let params = vec![
            ("token".to_string(), token.expose_secret().to_string()),
            ("token_type_hint".to_string(), hint.to_string()),
        ];
        let response = self.post_form(endpoint, params).await?;
        if !(200..300).contains(&response.status) {
            return Err(oauth_error_or_status(endpoint, &response));
        }
        let answer: Value = parse_json(endpoint, &response.body)?;
        if !answer.get("active").is_some_and(Value::is_boolean) {
            return Err(Error::MalformedResponse {
                url: crate::http::strip_query(endpoint),
                reason: "an introspection answer is an object with a boolean \"active\" (RFC 7662)"
                    .into(),
            });
        }
        Ok(answer)
    }

    /// Calls the userinfo endpoint with an access token.
    pub async fn userinfo(&self, access_token: &SecretString) -> Result<Value> {
        let endpoint = self
            .metadata
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| Error::Unsupported("userinfo".into()))?;
        let request = http::Request::get(endpoint)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose_secret()),
            )
            .body(Vec::new())
            .map_err(|e| url_error("userinfo", e))?;
        let response = self.http.send_expecting_json(request).await?;
        if !(200..300).contains(&response.status) {
            return Err(oauth_error_or_status(endpoint, &response));
        }
        parse_json(endpoint, &response.body)
    }

    /// A form POST with the client's authentication, for revocation and introspection.
    async fn post_form(
        &self,
        endpoint: &str,
        mut params: Vec<(String, String)>,
    ) -> Result<crate::http::Response> {
        let mut request = http::Request::post(endpoint)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        let id = &self.config.client_id;
        match self.config.client_auth {
            ClientAuth::ClientSecretBasic => {
                let secret = self
                    .credential
                    .map(|s| s.expose_secret())
                    .unwrap_or_default();
                let pair = format!("{}:{}", form_encode(id), form_encode(secret));
                request = request.header(
                    http::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            ClientAuth::ClientSecretPost => {
                params.push(("client_id".into(), id.clone()));
                let secret = self
                    .credential
                    .map(|s| s.expose_secret())
                    .unwrap_or_default();
                params.push(("client_secret".into(), secret.to_string()));
            }
            ClientAuth::None => params.push(("client_id".into(), id.clone())),
            ClientAuth::PrivateKeyJwt => {
                params.push(("client_id".into(), id.clone()));
                params.extend(self.assertion_params(&assertion_audience(
                    endpoint,
                    &self.metadata.token_endpoint,
                )?)?);
            }
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = request
            .body(body.into_bytes())
            .map_err(|e| url_error(endpoint, e))?;
        self.http
            .send_expecting_json(request)
            .await
            .or_else(|e| match e {
                // RFC 7009 §2.2: a successful revocation may have an empty body of any type.
                Error::UnexpectedContentType { .. } => Ok(crate::http::Response {
                    status: 200,
                    content_type: String::new(),
                    body: Vec::new(),
                    headers: http::HeaderMap::new(),
                }),
                other => Err(other),
            })
    }

    fn token_error(&self, e: RequestTokenError<Error, BasicErrorResponse>) -> Error {
        match e {
            RequestTokenError::ServerResponse(r) => Error::Provider {
                error: r.error().to_string(),
                description: r.error_description().cloned(),
            },
            RequestTokenError::Request(e) => e,
            RequestTokenError::Parse(e, _) => self.malformed(e.to_string()),
            RequestTokenError::Other(s) => self.malformed(s),
        }
    }

    fn malformed(&self, reason: String) -> Error {
        Error::MalformedResponse {
            url: self.metadata.token_endpoint.clone(),
            reason,
        }
    }
}

/// The `aud` of a `private_key_jwt` assertion sent to `endpoint` (revocation,
/// introspection): the token endpoint, which providers such as Stitch require — and so only
/// to a server of the token endpoint's own origin, where it cannot be replayed elsewhere. An
/// endpoint on another origin is refused before anything is sent, as unsupported.
fn assertion_audience(endpoint: &str, token_endpoint: &str) -> Result<String> {
    let origin = |u: &str| Url::parse(u).map(|u| u.origin()).ok();
    match (origin(endpoint), origin(token_endpoint)) {
        (Some(a), Some(b)) if a == b => Ok(token_endpoint.to_string()),
        _ => Err(Error::Unsupported(format!(
            "sending a private_key_jwt client assertion to {}, which is not the token endpoint's server",
            crate::http::strip_query(endpoint)
        ))),
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The oauth2 transport over our [`HttpClient`] (limits, timeouts, no redirects).
fn transport(
    http: &HttpClient,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse>> + Send>>
+ '_ {
    move |request| {
        let http = http.clone();
        Box::pin(async move {
            let response = http.send_expecting_json(request).await?;
            let mut out = http::Response::builder().status(response.status);
            for (k, v) in &response.headers {
                out = out.header(k, v);
            }
            out.body(response.body)
                .map_err(|e| Error::MalformedResponse {
                    url: String::new(),
                    reason: e.to_string(),
                })
        })
    }
}

fn token_set(
    response: OidcTokenResponse,
    now: u64,
    previous_refresh: Option<&SecretString>,
) -> TokenSet {
    let id_token = response
        .extra_fields()
        .id_token
        .clone()
        .map(SecretString::new);
    TokenSet {
        access_token: SecretString::new(response.access_token().secret().clone()),
        token_type: match response.token_type() {
            BasicTokenType::Bearer => "Bearer".to_string(),
            other => format!("{other:?}"),
        },
        expires_at: response
            .expires_in()
            .map(|d| now.saturating_add(d.as_secs())),
        refresh_token: response
            .refresh_token()
            .map(|r| SecretString::new(r.secret().clone()))
            .or_else(|| previous_refresh.cloned()),
        id_token_matches_access_token: id_token.is_some(),
        id_token,
        scope: response.scopes().map(|s| {
            s.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        nonce: None,
        obtained_at: now,
    }
}

#[cfg(test)]
mod tests;
