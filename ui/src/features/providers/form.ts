// The Add provider form's rules, read from the kind's ProviderSpec: which fields show (by the
// chosen client authentication), which must be filled, what locates the provider (a check
// holds only while those are unchanged), and the NewProvider the form sends. Nothing here
// knows a provider kind; the core enforces the same rules again.

import type { ClientAuth } from '../../bindings/ClientAuth';
import type { Field } from '../../bindings/Field';
import type { FieldSpec } from '../../bindings/FieldSpec';
import type { NewProvider } from '../../bindings/NewProvider';
import type { ProviderSpec } from '../../bindings/ProviderSpec';
import type { RedirectMode } from '../../bindings/RedirectMode';

export type Values = { [field in Field]?: string };

export const AUTH_LABEL: Record<ClientAuth, string> = {
  none: 'None — public client (PKCE)',
  client_secret_basic: 'Client secret (HTTP Basic)',
  client_secret_post: 'Client secret (form post)',
  private_key_jwt: 'Private key JWT',
};

/** The client authentication the form sends: none offered means the secret decides. */
export function chosenAuth(spec: ProviderSpec, auth: ClientAuth): ClientAuth | null {
  return spec.clientAuths.length === 0 ? null : auth;
}

export function isVisible(f: FieldSpec, auth: ClientAuth | null): boolean {
  return f.withAuth.length === 0 || (auth !== null && f.withAuth.includes(auth));
}

function filled(values: Values, field: Field): boolean {
  return (values[field] ?? '').trim() !== '';
}

/** Filled, or not needed: optional, or its alternative (`unless`) is filled. */
function satisfied(f: FieldSpec, values: Values): boolean {
  return !f.required || filled(values, f.field) || (f.unless !== null && filled(values, f.unless));
}

/** Whether the form says enough about where the provider lives to check it. An alternative
 *  that is not itself part of the location (a secret instead of a public key) cannot block
 *  the check. */
export function isLocated(spec: ProviderSpec, values: Values): boolean {
  const locating = new Set(spec.fields.filter((f) => f.locates).map((f) => f.field));
  return spec.fields
    .filter((f) => f.locates)
    .every((f) => satisfied(f, values) || (f.unless !== null && !locating.has(f.unless)));
}

/** Identifies what a check looked at: the kind and its locating values. */
export function locationKey(spec: ProviderSpec, values: Values): string {
  return JSON.stringify([spec.kind, ...spec.fields.filter((f) => f.locates).map((f) => (values[f.field] ?? '').trim())]);
}

export function isComplete(spec: ProviderSpec, values: Values, auth: ClientAuth | null): boolean {
  return spec.fields.filter((f) => isVisible(f, auth)).every((f) => satisfied(f, values));
}

/** Whether the provider is checked by its discovery document (else by its signing keys). */
export function checksDiscovery(spec: ProviderSpec): boolean {
  return spec.check === 'discovery_document';
}

/** The name a checked provider gets when none was typed: the issuer's host, or the label. */
export function defaultName(spec: ProviderSpec, issuer: string): string {
  if (!checksDiscovery(spec)) return spec.label;
  try {
    return new URL(issuer).host;
  } catch {
    return spec.label;
  }
}

export function newProvider(
  spec: ProviderSpec,
  name: string,
  values: Values,
  auth: ClientAuth,
  redirectMode: RedirectMode,
): NewProvider {
  const clientAuth = chosenAuth(spec, auth);
  const sent: Values = {};
  for (const f of spec.fields) {
    const value = values[f.field];
    if (value !== undefined && value.trim() !== '' && isVisible(f, clientAuth)) sent[f.field] = value;
  }
  return {
    kind: spec.kind,
    name: name.trim(),
    values: sent,
    clientAuth,
    redirectMode: spec.redirect === 'loopback_only' ? null : redirectMode,
  };
}
