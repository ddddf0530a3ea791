// Time helpers. All times from the Rust side are Unix seconds.

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** "4 min 05 s", "2 h 10 min", "12 s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "expires in 4 min 05 s" / "expired 12 s ago" / "no expiry given". */
export function countdown(expiresAt: number | null, now: number): string {
  if (expiresAt === null) return 'no expiry given';
  const left = expiresAt - now;
  return left > 0 ? `expires in ${duration(left)}` : `expired ${duration(-left)} ago`;
}

export function clock(t: number | null): string {
  if (t === null) return '—';
  return new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
