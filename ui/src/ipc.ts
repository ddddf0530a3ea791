// The only module that talks to the Rust side: typed wrappers around the app's commands and
// events. Types come from ./bindings (generated from Rust by ts-rs; do not edit them).
// Every command failure becomes a CommandError with the core's stable `code`.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type { AccountView } from './bindings/AccountView';
import type { CopiedToken } from './bindings/CopiedToken';
import type { DiscoveryView } from './bindings/DiscoveryView';
import type { EmailLinkSent } from './bindings/EmailLinkSent';
import type { IpcError } from './bindings/IpcError';
import type { NewProvider } from './bindings/NewProvider';
import type { OrgDetail } from './bindings/OrgDetail';
import type { OrganizationsDiscovered } from './bindings/OrganizationsDiscovered';
import type { ProviderSpec } from './bindings/ProviderSpec';
import type { ProviderView } from './bindings/ProviderView';
import type { RefreshView } from './bindings/RefreshView';
import type { SignInCompleted } from './bindings/SignInCompleted';
import type { SignInFailed } from './bindings/SignInFailed';
import type { SignInStarted } from './bindings/SignInStarted';
import type { SignOutView } from './bindings/SignOutView';
import type { StartupNotice } from './bindings/StartupNotice';
import type { TokenKindView } from './bindings/TokenKindView';
import type { TokenReport } from './bindings/TokenReport';

export class CommandError extends Error {
  readonly code: string;

  constructor(e: IpcError) {
    super(e.message);
    this.code = e.code;
  }
}

function isIpcError(e: unknown): e is IpcError {
  return typeof e === 'object' && e !== null
    && typeof (e as IpcError).code === 'string' && typeof (e as IpcError).message === 'string';
}

/** Any thrown value as a CommandError. */
export function asCommandError(e: unknown): CommandError {
  if (e instanceof CommandError) return e;
  if (isIpcError(e)) return new CommandError(e);
  return new CommandError({ code: 'internal', message: e instanceof Error ? e.message : String(e) });
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw asCommandError(e);
  }
}

/** A command waiting for a provider, which the person may stop waiting for. */
export interface Wait {
  id: string;
  /** What is being waited for, e.g. "Refreshing tokens". */
  label: string;
  /** `Date.now()` when it started. */
  startedAt: number;
}

let waiting: Wait[] = [];
const waitWatchers = new Set<(w: Wait[]) => void>();

function setWaiting(next: Wait[]) {
  waiting = next;
  waitWatchers.forEach((watch) => watch(waiting));
}

/** The commands waiting for a provider right now (a Svelte store). */
export const waits = {
  subscribe(watch: (w: Wait[]) => void): () => void {
    watch(waiting);
    waitWatchers.add(watch);
    return () => waitWatchers.delete(watch);
  },
};

/** Calls a command that waits for a provider, listed in `waits` until it ends; `cancelWait`
 *  makes it fail at once with the code `cancelled`. */
async function callWaiting<T>(command: string, label: string, args: Record<string, unknown>): Promise<T> {
  const id = crypto.randomUUID();
  setWaiting([...waiting, { id, label, startedAt: Date.now() }]);
  try {
    return await call<T>(command, { ...args, waitId: id });
  } finally {
    setWaiting(waiting.filter((w) => w.id !== id));
  }
}

export const api = {
  listProviderSpecs: () => call<ProviderSpec[]>('list_provider_specs'),
  listProviders: () => call<ProviderView[]>('list_providers'),
  checkProvider: (provider: NewProvider) =>
    callWaiting<DiscoveryView>('check_provider', 'Checking the provider', { provider }),
  addProvider: (provider: NewProvider) =>
    callWaiting<ProviderView>('add_provider', 'Adding the provider', { provider }),
  removeProvider: (name: string) => call<null>('remove_provider', { name }),

  startSignIn: (provider: string, someoneElse: boolean, org: string | null = null, oauthProvider: string | null = null) =>
    call<SignInStarted>('start_sign_in', { provider, someoneElse, org, oauthProvider }),
  sendEmailLink: (provider: string, email: string) =>
    callWaiting<EmailLinkSent>('send_email_link', 'Sending the sign-in link', { provider, email }),
  chooseOrganizations: (flowId: string, orgs: string[]) =>
    callWaiting<AccountView>('choose_organizations', 'Signing in to the organizations', { flowId, orgs }),
  signInWithPassword: (provider: string, email: string, password: string) =>
    callWaiting<AccountView>('sign_in_with_password', 'Signing in', { provider, email, password }),
  signInWithMailedCode: (provider: string, code: string) =>
    callWaiting<AccountView>('sign_in_with_mailed_code', 'Signing in with the code', { provider, code }),
  cancelSignIn: (flowId: string) => call<boolean>('cancel_sign_in', { flowId }),
  uiReady: () => call<StartupNotice[]>('ui_ready'),

  listAccounts: () => call<AccountView[]>('list_accounts'),
  refreshAccount: (accountId: string) =>
    callWaiting<RefreshView>('refresh_account', 'Refreshing tokens', { accountId }),
  signOut: (accountId: string, revoke: boolean) =>
    callWaiting<SignOutView>('sign_out', revoke ? 'Revoking and signing out' : 'Signing out', { accountId, revoke }),

  tokenReport: (accountId: string, kind: TokenKindView) =>
    callWaiting<TokenReport>('token_report', 'Verifying the token', { accountId, kind }),
  copyAccessToken: (accountId: string) => call<CopiedToken>('copy_access_token', { accountId }),

  listOrgs: (accountId: string) =>
    callWaiting<OrgDetail[]>('list_orgs', 'Listing the organizations', { accountId }),
  orgTokenReport: (accountId: string, org: string, kind: TokenKindView) =>
    callWaiting<TokenReport>('org_token_report', 'Getting the organization’s token', { accountId, org, kind }),
  switchOrg: (accountId: string, org: string) =>
    callWaiting<AccountView>('switch_org', 'Switching organization', { accountId, org }),
  cancelWait: (waitId: string) => call<boolean>('cancel_wait', { waitId }),
};

export interface AppEvents {
  signInCompleted: (e: SignInCompleted) => void;
  signInFailed: (e: SignInFailed) => void;
  organizationsDiscovered: (e: OrganizationsDiscovered) => void;
  accountsChanged: () => void;
  appError: (e: IpcError) => void;
}

/** Subscribes to the shell's events; resolves to a function that unsubscribes all. */
export async function subscribe(handlers: AppEvents): Promise<UnlistenFn> {
  const offs = await Promise.all([
    listen<SignInCompleted>('sign-in-completed', (e) => handlers.signInCompleted(e.payload)),
    listen<SignInFailed>('sign-in-failed', (e) => handlers.signInFailed(e.payload)),
    listen<OrganizationsDiscovered>('organizations-discovered', (e) =>
      handlers.organizationsDiscovered(e.payload)),
    listen<null>('accounts-changed', () => handlers.accountsChanged()),
    listen<IpcError>('app-error', (e) => handlers.appError(e.payload)),
  ]);
  return () => offs.forEach((off) => off());
}
