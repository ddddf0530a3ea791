//! Auth0: the issuer is `https://<tenant domain>/`; each organization is its own sign-in
//! (`organization=` by id `org_…` or by name), whose ID token must name it in `org_id`
//! (`org_name` for a name); the browser session ends at `/v2/logout`.

use crate::error::{Error, Result};
use crate::jwt::DecodedJwt;
use crate::provider::{DEFAULT_SCOPES, OrgModel, ProviderKind, ProviderMetadata};
use crate::providers::{Field, FieldSpec};

use super::{ALL_AUTHS, Flavour, Location};

pub(super) static FLAVOUR: Flavour = Flavour {
    kind: ProviderKind::Auth0,
    label: "Auth0",
    blurb: "Your tenant domain; organizations sign in one by one (organization=).",
    location: Some(Location {
        field: FieldSpec {
            field: Field::Domain,
            label: "Tenant domain",
            help: "Your Auth0 tenant, e.g. example.eu.auth0.com, or a custom domain.",
            placeholder: "example.eu.auth0.com",
            required: false,
            unless: None,
            secret: false,
            locates: true,
            with_auth: Vec::new(),
            list: false,
        },
        issuer_of,
    }),
    scopes: &DEFAULT_SCOPES,
    resources: &[],
    client_auths: ALL_AUTHS,
    org_model: OrgModel::SignInPerOrg,
    org_sign_in_param: Some("organization"),
    confirm_org,
    org_token: None,
    logout_url: Some(logout_url),
};

fn issuer_of(domain: &str) -> String {
    let host = domain.trim_start_matches("https://").trim_end_matches('/');
    format!("https://{host}/")
}

fn logout_url(metadata: &ProviderMetadata) -> String {
    format!("{}/v2/logout", metadata.issuer.trim_end_matches('/'))
}

/// The ID token of an organization sign-in must name the organization asked for (by id
/// `org_…`, or by name when a name was asked for).
fn confirm_org(claims: &DecodedJwt, requested: &str) -> Result<String> {
    let reject = |reason: String| Error::TokenRejected {
        token: "ID token".into(),
        reason,
    };
    let org_id = claims.claim_str("org_id").ok_or_else(|| {
        reject(format!(
            "it carries no org_id although organization \"{requested}\" was requested"
        ))
    })?;
    let named = claims
        .claim_str("org_name")
        .is_some_and(|n| n.eq_ignore_ascii_case(requested));
    if org_id != requested && (requested.starts_with("org_") || !named) {
        return Err(reject(format!(
            "its org_id \"{org_id}\" is not the requested organization \"{requested}\""
        )));
    }
    Ok(org_id.to_string())
}
