//! Requests to a provider's endpoints that must not be sent, or must be read with care.

use super::*;
use crate::http::HttpConfig;

fn metadata(revocation: &str) -> ProviderMetadata {
    ProviderMetadata {
        issuer: "http://127.0.0.1:9".into(),
        authorization_endpoint: "http://127.0.0.1:9/auth".into(),
        token_endpoint: "http://127.0.0.1:9/token".into(),
        jwks_uri: "http://127.0.0.1:9/jwks".into(),
        userinfo_endpoint: None,
        revocation_endpoint: Some(revocation.into()),
        introspection_endpoint: None,
        end_session_endpoint: None,
        device_authorization_endpoint: None,
        authorization_response_iss_parameter_supported: false,
        code_challenge_methods_supported: None,
    }
}

#[tokio::test]
async fn private_key_jwt_assertions_go_only_to_the_token_endpoints_server() {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    let key = SecretString::new(key);
    let mut config = ProviderConfig::new("stitch", "http://127.0.0.1:9", "client");
    config.client_auth = ClientAuth::PrivateKeyJwt;
    let http = HttpClient::new(HttpConfig::default()).unwrap();
    let revoke = |revocation: &str| {
        let metadata = metadata(revocation);
        let (config, key, http) = (config.clone(), &key, http.clone());
        async move {
            let endpoint = Endpoint {
                config: &config,
                metadata: &metadata,
                credential: Some(key),
                http: &http,
                now: 1_800_000_000,
            };
            endpoint.revoke(&SecretString::new("rt")).await.unwrap_err()
        }
    };
    // Another server (another port, another loopback host): refused before sending.
    for elsewhere in ["http://127.0.0.1:10/revoke", "http://127.0.0.2:9/revoke"] {
        assert_eq!(revoke(elsewhere).await.code(), "unsupported", "{elsewhere}");
    }
    // The token endpoint's own server: sent (and nobody listens there).
    assert_eq!(revoke("http://127.0.0.1:9/revoke").await.code(), "network");
}
