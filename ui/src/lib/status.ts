import type { AccountView } from '../bindings/AccountView';

export type Badge = 'active' | 'expiring' | 'expired' | 'needs_sign_in';

/** Seconds before expiry from which an access token counts as expiring. */
export const EXPIRING_WITHIN = 120;

export function badgeOf(account: AccountView, now: number): Badge {
  if (account.status === 'needs_sign_in') return 'needs_sign_in';
  const exp = account.accessExpiresAt;
  if (exp === null) return 'active';
  if (exp <= now) return 'expired';
  return exp - now <= EXPIRING_WITHIN ? 'expiring' : 'active';
}

export const BADGE_LABEL: Record<Badge, string> = {
  active: 'active',
  expiring: 'expiring',
  expired: 'token expired',
  needs_sign_in: 'needs sign-in',
};

export const BADGE_HINT: Record<Badge, string> = {
  active: 'Signed in; the access token is valid.',
  expiring: 'The access token expires soon; Tessera refreshes it when you use it.',
  expired: 'The access token expired; Tessera refreshes it when you use it (or use Refresh now).',
  needs_sign_in: 'The provider no longer accepts the refresh token: sign in again.',
};

export function displayName(a: AccountView): string {
  return a.name ?? a.email ?? a.subject;
}
