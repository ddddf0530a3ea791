// How a provider's spec maps to the window's sign-in: straight to the browser, or a dialog
// with the ways in that Tessera offers itself (the device grant is for the command line).

import type { ProviderSpec } from '../../bindings/ProviderSpec';
import type { SignInMethod } from '../../bindings/SignInMethod';

const IN_DIALOG: ReadonlySet<SignInMethod> = new Set(['oauth', 'password', 'email_link', 'mailed_code']);

/** Whether signing in needs the sign-in dialog; if not, it goes straight to the browser. */
export function needsDialog(spec: ProviderSpec): boolean {
  return spec.signIn.some((m) => IN_DIALOG.has(m));
}

const BRANDS: Record<string, string> = { github: 'GitHub', gitlab: 'GitLab', linkedin: 'LinkedIn' };

/** A social provider's name as people write it (`github` → GitHub, `google` → Google). */
export function oauthLabel(id: string): string {
  return BRANDS[id] ?? id.charAt(0).toUpperCase() + id.slice(1);
}
