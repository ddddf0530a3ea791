//! Logto: the issuer is `<endpoint>/oidc`; organizations come from the ID token, and an
//! organization's token is minted from the account's refresh token (`organization_id`, with
//! the organizations resource), carrying the audience `urn:logto:organization:<id>`.

use crate::provider::{OrgModel, ProviderKind};
use crate::providers::{Field, FieldSpec, OrgTokenRequest};

use super::{ALL_AUTHS, Flavour, Location, no_org};

pub(super) static FLAVOUR: Flavour = Flavour {
    kind: ProviderKind::Logto,
    label: "Logto",
    blurb: "Your Logto endpoint; organization tokens come from your refresh token.",
    location: Some(Location {
        field: FieldSpec {
            field: Field::Endpoint,
            label: "Endpoint",
            help: "Your Logto endpoint, e.g. https://tenant.logto.app.",
            placeholder: "https://tenant.logto.app",
            required: false,
            unless: None,
            secret: false,
            locates: true,
            with_auth: Vec::new(),
            list: false,
        },
        issuer_of,
    }),
    scopes: &[
        "openid",
        "profile",
        "email",
        "offline_access",
        "urn:logto:scope:organizations",
        "urn:logto:scope:organization_roles",
    ],
    resources: &["urn:logto:resource:organizations"],
    client_auths: ALL_AUTHS,
    org_model: OrgModel::TokenPerOrg,
    org_sign_in_param: Some("organization_id"),
    confirm_org: no_org,
    org_token: Some(org_token),
    logout_url: None,
};

fn issuer_of(endpoint: &str) -> String {
    format!("{}/oidc", endpoint.trim_end_matches('/'))
}

fn org_token(org: &str) -> OrgTokenRequest {
    OrgTokenRequest {
        params: vec![("organization_id".into(), org.to_string())],
        audience: format!("urn:logto:organization:{org}"),
    }
}
