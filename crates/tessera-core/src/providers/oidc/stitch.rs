//! Stitch SSO: a public client or `private_key_jwt` (with a key id) or `client_secret_post`;
//! asks only for `openid offline_access`; refresh tokens are single use; no organizations.

use crate::provider::{ClientAuth, OrgModel, ProviderKind};

use super::{Flavour, no_org};

pub(super) static FLAVOUR: Flavour = Flavour {
    kind: ProviderKind::Stitch,
    label: "Stitch",
    blurb: "Stitch SSO: public client, or private_key_jwt with a key id.",
    location: None,
    scopes: &["openid", "offline_access"],
    resources: &[],
    client_auths: &[
        ClientAuth::None,
        ClientAuth::PrivateKeyJwt,
        ClientAuth::ClientSecretPost,
    ],
    org_model: OrgModel::None,
    org_sign_in_param: None,
    confirm_org: no_org,
    org_token: None,
    logout_url: None,
};
