#!/usr/bin/env python3
"""End-to-end test of the Tessera desktop app: the real app (UI embedded), the real browser
engine (WebKitGTK through tauri-driver + WebKitWebDriver), the real provider (tests/idp), the
real keychain (gnome-keyring in the private session of scripts/keyring-session).

Run it through tests/e2e/run, which builds nothing: it expects target/debug/tessera-desktop
built with the UI embedded (scripts/test does that after the cargo tests).

The scenario, driven through the UI:
 1. add the local provider (discovery check, then save);
 2. click Sign in; read the authorization URL from the sign-in panel; play the browser
    (login form at the provider, password "demo"); deliver the final dev.tessera:/callback URL
    the way the OS does, by launching the app binary a second time with the URL;
 3. the window shows the account and its verified claims;
 4. Refresh now changes the expiry;
 5. a callback with a wrong state shows an error and changes nothing;
 6. Sign out revokes (a refresh at the provider with the old refresh token now fails) and
    removes the keychain entry;
 7. a cold start opened by a deep link for a flow of an earlier run shows a clear message;
 8. Logto (tests/idp --flavor logto): the preset by endpoint, a browser sign-in, and a verified
    organization token for each of the person's organizations;
 9. Auth0 (tests/idp --flavor auth0): the preset by domain, a sign-in, then a sign-in per
    organization from the organizations panel, each organization's token verified;
10. Stytch B2B (tests/fakes/stytch.mjs): the preset by project, an e-mail typed in Tessera, the
    mailed discovery link delivered as the OS would, organizations picked, an organization
    session verified, and MFA-required named for the organization that needs it;
11. Stack Auth (tests/fakes/stack.mjs): the preset by project, a wrong then a right password
    typed in Tessera, a team switch that the access token then carries, "Continue with
    GitHub" through the browser back to a loopback address, and a mailed code typed in.

Each step saves a screenshot under artifacts/e2e/ and fails if its expected text is missing.
Only the Python standard library is used.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = Path(os.environ.get("TESSERA_E2E_APP", REPO / "target/debug/tessera-desktop"))
ARTIFACTS = REPO / "artifacts" / "e2e"
PROVIDER = "E2E provider"
CLIENT_ID = "tessera-public"
USER, PASSWORD = "alice", "demo"
TIMEOUT = 30.0


# Installs (once per page) a recorder of everything Rust hands the web view, for the secret scan,
# and returns what it recorded since the last call.
IPC_RECORDER = """
const callbacks = window.__TAURI_INTERNALS__ && window.__TAURI_INTERNALS__.callbacks;
if (!callbacks) return [];
if (!window.__tesseraSeen) {
  window.__tesseraSeen = [];
  const get = Map.prototype.get;
  callbacks.get = function (id) {
    const callback = get.call(this, id);
    return callback && ((data) => {
      try { window.__tesseraSeen.push(JSON.stringify(data)); } catch (e) { window.__tesseraSeen.push(String(e)); }
      return callback(data);
    });
  };
}
return window.__tesseraSeen.splice(0);
"""


class Failure(Exception):
    pass


def log(msg: str) -> None:
    print(f"e2e: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = TIMEOUT, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        time.sleep(interval)
    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


# ---- processes ------------------------------------------------------------------------------

class Processes:
    """Children started by the test, stopped in reverse order."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.children.append((name, p))
        return p

    def stop_all(self) -> None:
        for name, p in reversed(self.children):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.children.clear()


def start_xvfb(procs: Processes) -> str:
    read, write = os.pipe()
    procs.start("Xvfb", ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        raise Failure("Xvfb did not start")
    return f":{number}"


def start_node(procs: Processes, name: str, argv: list[str], logs: Path) -> dict:
    """Starts a Node server of tests/ and returns the JSON line it prints once it listens."""
    p = procs.start(name, ["node", *argv], cwd=REPO, stdout=subprocess.PIPE,
                    stderr=open(logs / f"{name}.log", "w"), text=True)
    line = p.stdout.readline() if p.stdout else ""
    if not line:
        raise Failure(f"{argv[0]} did not start; see {logs / f'{name}.log'}")
    return json.loads(line)


def start_idp(procs: Processes, logs: Path) -> str:
    issuer = start_node(procs, "idp", ["tests/idp/server.mjs", "--port", "0", "--profile", "rotating",
                                       "--access-ttl", "300", "--test-hooks"], logs)["issuer"]
    log(f"provider at {issuer}")
    return issuer


def post_json(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


# ---- WebDriver (W3C, plain HTTP) --------------------------------------------------------------

class WebDriver:
    def __init__(self, port: int, env: dict) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.env = env
        self.session: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    return json.loads(resp.read() or b"{}").get("value")
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")
                raise Failure(f"WebDriver {method} {path}: HTTP {e.code}: {detail[:500]}") from None
            except (http.client.RemoteDisconnected, ConnectionResetError) as e:
                # tauri-driver's proxy sometimes reuses a pooled connection that WebKitWebDriver
                # has just closed; the request never reached the driver, so sending it again is
                # safe.
                if attempt == 2:
                    raise Failure(f"WebDriver {method} {path}: {e}") from None
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def start(self, args: list[str] | None = None) -> None:
        caps = {"browserName": "wry", "tauri:options": {"application": str(APP), "args": args or []}}
        value = self._request("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = value["sessionId"]

    def quit(self) -> None:
        if self.session:
            try:
                self._request("DELETE", f"/session/{self.session}")
            except Exception:  # noqa: BLE001 - the app may already be gone
                pass
            self.session = None

    def s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def find_all(self, css: str) -> list[str]:
        found = self._request("POST", self.s("/elements"), {"using": "css selector", "value": css})
        return [next(iter(e.values())) for e in found]

    def find(self, css: str) -> str:
        return wait_for(f"element {css}", lambda: (self.find_all(css) or [None])[0])

    def click(self, css: str) -> None:
        self._request("POST", self.s(f"/element/{self.find(css)}/click"))

    def type(self, css: str, text: str) -> None:
        el = self.find(css)
        self._request("POST", self.s(f"/element/{el}/clear"))
        self._request("POST", self.s(f"/element/{el}/value"), {"text": text})

    def text(self, css: str) -> str:
        return self._request("GET", self.s(f"/element/{self.find(css)}/text"))

    def prop(self, css: str, name: str):
        return self._request("GET", self.s(f"/element/{self.find(css)}/property/{name}"))

    def scroll_to(self, css: str) -> None:
        self._request("POST", self.s("/execute/sync"), {
            "script": "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});",
            "args": [css]})
        time.sleep(0.3)

    def set_size(self, width: int, height: int) -> None:
        self._request("POST", self.s("/window/rect"), {"x": 0, "y": 0, "width": width, "height": height})

    def page_source(self) -> str:
        return self._request("GET", self.s("/source"))

    def drain_ipc(self) -> list[str]:
        """Every message Rust delivered to the web view (command answers, events) since the last
        call, as JSON text; installs the recorder first if this page has none. Tauri routes
        them all through `__TAURI_INTERNALS__.runCallback`, which looks up `callbacks`."""
        return self._request("POST", self.s("/execute/sync"), {"script": IPC_RECORDER, "args": []}) or []

    def page_text(self) -> str:
        return self._request("GET", self.s(f"/element/{self.find('body')}/text"))

    def screenshot(self, path: Path) -> None:
        # WebKitWebDriver's own screenshot stalls under Xvfb without compositing; grab the
        # X screen instead (the whole window, title bar included).
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=30,
                       capture_output=True)

    def wait_text(self, css: str, expected: str, timeout: float = TIMEOUT) -> str:
        def check():
            for el in self.find_all(css):
                t = self._request("GET", self.s(f"/element/{el}/text"))
                if expected.lower() in t.lower():
                    return t
            return None
        return wait_for(f"{expected!r} in {css}", check, timeout)


# ---- the browser the test plays -----------------------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def play_browser(authorization_url: str) -> str:
    """Follows the authorization URL like a browser (cookie jar, redirects within the issuer),
    fills in the provider's login form and returns the redirect that leaves the issuer."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    origin = urllib.parse.urlsplit(authorization_url)[:2]

    def fetch(url: str, form: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form else None
        try:
            resp = opener.open(urllib.request.Request(url, data=data), timeout=30)
            return resp.status, resp.headers, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode(errors="replace")

    url, form, logins = authorization_url, None, 0
    for _ in range(30):
        status, headers, body = fetch(url, form)
        form = None
        if 300 <= status < 400 and headers.get("Location"):
            location = headers["Location"]
            target = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(target)[:2] != origin:
                return location
            url = target
            continue
        match = re.search(r"/interaction/([^/?#]+)$", urllib.parse.urlsplit(url).path)
        if status != 200 or not match:
            raise Failure(f"browser: unexpected page {status} at {url}: {body[:300]}")
        logins += 1
        if logins > 1:
            raise Failure(f"browser: the provider showed its login page again: {body[:300]}")
        url, form = f"{url}/login", {"login": USER, "password": PASSWORD}
    raise Failure("browser: too many redirects")


def deliver(url: str, env: dict) -> None:
    """What the OS does with a dev.tessera: link: start the app with it. The running instance
    receives it through single-instance; this second process exits at once."""
    done = subprocess.run([str(APP), url], env=env, timeout=30, capture_output=True, text=True)
    if done.returncode != 0:
        raise Failure(f"second launch exited {done.returncode}: {done.stderr[-500:]}")


# ---- keychain ------------------------------------------------------------------------------------

def keychain_entries() -> list[dict]:
    """Items of service dev.tessera as `secret-tool` prints them on stdout (label, secret, …;
    the attributes go to stderr, unordered relative to stdout, so they are not used)."""
    out = subprocess.run(["secret-tool", "search", "--all", "service", "dev.tessera"],
                         capture_output=True, text=True, timeout=30)
    entries, current = [], None
    for line in out.stdout.splitlines():
        if line.startswith("["):
            current = {}
            entries.append(current)
        elif current is not None and " = " in line:
            key, value = line.split(" = ", 1)
            current[key.strip()] = value
    return entries


def account_entries() -> list[dict]:
    """Keychain entries of accounts: keyring labels them `<namespace>/account/<id>@dev.tessera:…`."""
    return [e for e in keychain_entries() if "/account/" in e.get("label", "")]


def refresh_at_provider(issuer: str, refresh_token: str) -> tuple[int, dict]:
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=30) as r:
        token_endpoint = json.load(r)["token_endpoint"]
    data = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                   "client_id": CLIENT_ID}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(token_endpoint, data=data), timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


# ---- the scenario --------------------------------------------------------------------------------

class Run:
    def __init__(self, driver: WebDriver, env: dict, issuer: str) -> None:
        self.d, self.env, self.issuer = driver, env, issuer
        self.step_no = 0

    def shot(self, name: str) -> None:
        self.step_no += 1
        path = ARTIFACTS / f"{self.step_no:02d}-{name}.png"
        self.d.screenshot(path)
        log(f"screenshot {path.relative_to(REPO)}")
        self.keep_evidence(path.stem)

    def keep_evidence(self, name: str) -> None:
        """The page source and the IPC messages so far, for the secret scan (tests/secret-scan)."""
        (ARTIFACTS / "pages").mkdir(exist_ok=True)
        (ARTIFACTS / "pages" / f"{name}.html").write_text(self.d.page_source())
        with open(ARTIFACTS / "ipc.jsonl", "a") as seen:
            seen.writelines(f"{m}\n" for m in self.d.drain_ipc())

    def expect_page(self, *texts: str) -> None:
        page = self.d.page_text().lower()
        missing = [t for t in texts if t.lower() not in page]
        if missing:
            raise Failure(f"missing on screen: {missing}")

    def start_sign_in(self) -> str:
        self.d.click(f'[data-testid="sign-in-{PROVIDER}"]')
        self.d.find('[data-testid="sign-in-panel"]')
        url = wait_for("the authorization URL", lambda: self.d.prop('[data-testid="sign-in-url"]', "value"))
        return url

    def add_provider(self, preset: str, fields: dict[str, str], name: str, found: str) -> None:
        """Add provider: pick the preset, fill `fields` (by test id), check, name it, save."""
        d = self.d
        d.click('[data-testid="add-provider"]')
        d.click(f'[data-testid="preset-{preset}"]')
        for testid, value in fields.items():
            d.type(f'[data-testid="{testid}"]', value)
        d.click('[data-testid="check-discovery"]')
        d.wait_text('[data-testid="discovery-ok"]', found)
        d.type('[data-testid="provider-name"]', name)
        self.shot(f"add-{preset}")
        d.click('[data-testid="save-provider"]')
        d.find(f'[data-testid="sign-in-{name}"]')
        if d.find_all('[data-testid="add-provider-dialog"]'):
            raise Failure(f"the Add provider dialog is still open: {d.page_text()}")

    def add_fake_and_sign_in(self, procs: Processes, fake_name: str, preset: str, key: str, name: str) -> dict:
        """Starts tests/fakes/<fake_name>.mjs, adds it with its preset (project id, API base and
        public key `key` from the fake's ready line) and clicks Sign in; returns the ready line."""
        fake = start_node(procs, fake_name, [f"tests/fakes/{fake_name}.mjs", "--port", "0"], ARTIFACTS)
        self.add_provider(preset, {"project-id": fake["project_id"], "base-url": fake["base_url"],
                                   "client-key": fake[key]}, name, "signing keys")
        self.d.click(f'[data-testid="sign-in-{name}"]')
        return fake

    def logto_organizations(self, procs: Processes) -> None:
        """Logto: preset by endpoint, browser sign-in, then an organization token per
        organization, each minted from the account's refresh token and verified."""
        d = self.d
        idp = start_node(procs, "idp-logto", ["tests/idp/server.mjs", "--flavor", "logto", "--port", "0"], ARTIFACTS)
        origin = idp["issuer"].removesuffix("/oidc")
        self.add_provider("logto", {"endpoint": origin, "client-id": CLIENT_ID}, "Logto", "Discovery document found")
        self.expect_page(idp["issuer"])
        d.click('[data-testid="sign-in-Logto"]')
        url = wait_for("the authorization URL", lambda: d.prop('[data-testid="sign-in-url"]', "value"))
        if "urn%3Alogto%3Ascope%3Aorganizations" not in url:
            raise Failure(f"the Logto preset does not ask for organizations: {url}")
        deliver(play_browser(url), self.env)
        d.wait_text('[data-testid="notice-info"]', "at Logto")
        d.wait_text('[data-testid="organizations"]', "minted from this account")
        for org in ("acme", "globex"):
            d.click(f'[data-testid="org-token-{org}"]')
            d.wait_text('[data-testid="org-token"]', f"Organization token · {org}")
            d.wait_text('[data-testid="org-token"]', f"urn:logto:organization:{org}")
            d.wait_text('[data-testid="org-token-verdict"]', "verified")
        d.scroll_to('[data-testid="organizations"]')
        self.shot("logto-org-token")

    def auth0_organizations(self, procs: Processes) -> None:
        """Auth0: preset by domain with the local issuer, a sign-in without organization, then
        "Sign in to another organization" twice (each its own authorization with
        `organization=`), and each organization's own verified token."""
        d = self.d
        idp = start_node(procs, "idp-auth0", ["tests/idp/server.mjs", "--flavor", "auth0", "--port", "0"], ARTIFACTS)
        self.add_provider("auth0", {"domain": "tenant.example.auth0.com", "issuer": idp["issuer"],
                                    "client-id": CLIENT_ID, "audience": "https://api.example.test"},
                          "Auth0", "Discovery document found")
        d.click('[data-testid="sign-in-Auth0"]')
        url = wait_for("the authorization URL", lambda: d.prop('[data-testid="sign-in-url"]', "value"))
        deliver(play_browser(url), self.env)
        d.wait_text('[data-testid="organizations"]', "The provider lists no organization")
        for org, org_id in (("acme", "org_acme"), ("globex", "org_globex")):
            d.type('[data-testid="org-another"]', org)
            d.click('[data-testid="org-another-sign-in"]')
            url = wait_for("the authorization URL", lambda: d.prop('[data-testid="sign-in-url"]', "value"))
            if f"organization={org}" not in url:
                raise Failure(f"the sign-in does not ask for {org}: {url}")
            deliver(play_browser(url), self.env)
            wait_for("the sign-in panel to close", lambda: not d.find_all('[data-testid="sign-in-panel"]'))
            d.click(f'[data-testid="org-token-{org}"]')
            d.wait_text('[data-testid="org-token"]', org_id)
            d.wait_text('[data-testid="org-token-verdict"]', "verified")
        if len(d.find_all('[data-testid="provider-Auth0"] [data-testid^="account-"]')) != 1:
            raise Failure("signing in to organizations made more than one Auth0 account")
        d.scroll_to('[data-testid="organizations"]')
        self.shot("auth0-organizations")

    def stytch_magic_link(self, procs: Processes) -> None:
        """Stytch B2B: preset by project, e-mail typed in Tessera, the mailed discovery link
        delivered the way the OS would, organizations picked, an organization session shown."""
        d = self.d
        fake = self.add_fake_and_sign_in(procs, "stytch", "stytch_b2b", "public_token", "Stytch")
        d.type('[data-testid="email"]', "alice@example.com")
        d.click('[data-testid="sign-in-submit"]')
        d.wait_text('[data-testid="link-sent"]', "alice@example.com")
        self.shot("stytch-check-mail")
        links = [m["link"] for m in get_json(fake["base_url"] + "/__test/outbox") if m["to"] == "alice@example.com"]
        if len(links) != 1 or not links[0].startswith("dev.tessera:/callback?stytch_token_type=discovery"):
            raise Failure(f"expected one discovery link in the outbox, got {links}")
        deliver(links[0], self.env)
        d.wait_text('[data-testid="org-picker"]', "Choose organizations")
        self.expect_page("Acme", "Globex", "can join")
        if d.find_all('[data-testid="sign-in-dialog"]'):
            raise Failure("the e-mail dialog is still open after the link came back")
        self.shot("stytch-org-picker")
        # Both ticked: Acme signs in, Globex requires MFA, which the picker names.
        d.click('[data-testid="sign-in-orgs"]')
        d.wait_text('[data-testid="org-picker-error"]', "mfa_required")
        d.wait_text('[data-testid="org-picker"]', "link is used up")
        if d.prop('[data-testid="sign-in-orgs"]', "disabled") is not True:
            raise Failure("the picker offers its used-up link again")
        self.shot("stytch-org-picker-mfa")
        d.click('[data-testid="org-picker"] .actions button')
        wait_for("the Stytch account", lambda: d.find_all('[data-testid="provider-Stytch"] [data-testid^="account-"]'))
        d.click('[data-testid="provider-Stytch"] [data-testid^="account-"]')
        d.wait_text('[data-testid="access-token-verdict"]', "verified")
        d.wait_text('[data-testid="organizations"]', "Acme")
        d.click('[data-testid="org-token-Acme"]')
        d.wait_text('[data-testid="org-token"]', "https://stytch.com/organization")
        d.wait_text('[data-testid="org-token-verdict"]', "verified")
        d.click('[data-testid="org-token-Globex"]')
        d.wait_text('[data-testid="org-token"]', "mfa_required")
        d.scroll_to('[data-testid="organizations"]')
        self.shot("stytch-org-session")

    def stack_password_and_teams(self, procs: Processes) -> None:
        """Stack Auth: preset by project, e-mail and password typed in Tessera (a wrong one
        first), then a switch of the session's current team that the token then carries."""
        d = self.d
        fake = self.add_fake_and_sign_in(procs, "stack", "stack_auth", "publishable_key", "Stack")
        d.type('[data-testid="email"]', "alice@example.com")
        d.type('[data-testid="password"]', "wrong")
        d.click('[data-testid="sign-in-submit"]')
        d.wait_text('[data-testid="sign-in-error"]', "EMAIL_PASSWORD_MISMATCH")
        if d.prop('[data-testid="password"]', "value"):
            raise Failure("the password field kept the password after a failed sign-in")
        self.shot("stack-wrong-password")
        # A provider that does not answer the password: the wait shows above the dialog, and
        # its Cancel ends it at once with the reason in the dialog.
        sign_in_path = "/api/v1/auth/password/sign-in"
        post_json(fake["base_url"] + "/__test/stall", {"path": sign_in_path})
        d.type('[data-testid="password"]', PASSWORD)
        d.click('[data-testid="sign-in-submit"]')
        get_json(fake["base_url"] + "/__test/stalled?path=" + urllib.parse.quote(sign_in_path, safe=""))
        d.wait_text('[data-testid="wait"]', "Signing in")
        self.shot("stack-password-waiting")
        d.click('[data-testid="cancel-wait"]')
        d.wait_text('[data-testid="sign-in-error"]', "Stopped waiting for the provider")
        post_json(fake["base_url"] + "/__test/release", {"path": sign_in_path})
        d.type('[data-testid="password"]', PASSWORD)
        d.click('[data-testid="sign-in-submit"]')
        d.wait_text('[data-testid="notice-info"]', "at Stack")
        d.wait_text('[data-testid="access-token-verdict"]', "verified")
        d.click('[data-testid="org-switch-Team Globex"]')
        d.wait_text('[data-testid="notice-info"]', "Team Globex is now the current team")
        d.wait_text('[data-testid="org-Team Globex"]', "current")
        globex = "610be000-0000-4000-8000-000000000002"
        d.wait_text('[data-testid="access-token"]', globex)
        d.scroll_to('[data-testid="organizations"]')
        self.shot("stack-team-switched")

        # Through the browser: "Continue with GitHub" returns over a loopback address.
        d.click('[data-testid="sign-in-Stack"]')
        d.click('[data-testid="oauth-github"]')
        d.wait_text('[data-testid="sign-in-panel"]', "127.0.0.1")
        url = wait_for("the authorization URL", lambda: d.prop('[data-testid="sign-in-url"]', "value"))
        # Stack sends the browser to the upstream provider (GitHub's stand-in, where alice is
        # signed in), which returns to Stack's callback, which checks the return address.
        back = play_browser(url)
        if not back.startswith("http://127.0.0.1:"):
            raise Failure(f"Stack sent the browser to {back}, not the loopback listener")
        with urllib.request.urlopen(back, timeout=30) as page:
            if "Tessera" not in page.read().decode(errors="replace"):
                raise Failure("the loopback page does not send the person back to Tessera")
        wait_for("the sign-in panel to close", lambda: not d.find_all('[data-testid="sign-in-panel"]'))
        d.wait_text('[data-testid="notice-info"]', "Signed in as Alice Example at Stack")
        self.shot("stack-oauth")

        # A mailed code, typed: the six characters the mail shows.
        d.click('[data-testid="sign-in-Stack"]')
        d.click('[data-testid="switch-sign-in-mode"]')
        d.type('[data-testid="email"]', "bob@example.com")
        d.click('[data-testid="sign-in-submit"]')
        d.wait_text('[data-testid="link-sent"]', "bob@example.com")
        otps = [m["otp"] for m in get_json(fake["base_url"] + "/__test/outbox") if m["to"] == "bob@example.com"]
        if len(otps) != 1:
            raise Failure(f"expected one mail to bob, got {otps}")
        d.type('[data-testid="mailed-code"]', otps[0].lower())
        self.shot("stack-mailed-code")
        d.click('[data-testid="sign-in-submit"]')
        wait_for("the sign-in dialog to close", lambda: not d.find_all('[data-testid="sign-in-dialog"]'))
        d.wait_text('[data-testid="account-name"]', "Bob Example")

    def scenario(self) -> None:
        d = self.d
        d.find('[data-testid="add-provider"]')
        self.expect_page("Welcome to Tessera", "Add a provider")
        self.shot("empty")

        # 1. add the provider
        d.click('[data-testid="add-provider"]')
        d.type('[data-testid="issuer"]', self.issuer)
        d.click('[data-testid="check-discovery"]')
        d.wait_text('[data-testid="discovery-ok"]', "Discovery document found")
        d.type('[data-testid="provider-name"]', PROVIDER)
        d.type('[data-testid="client-id"]', CLIENT_ID)
        self.shot("add-provider")
        d.click('[data-testid="save-provider"]')
        d.wait_text("body", "Sign in to an account")
        self.expect_page(PROVIDER, self.issuer)
        self.shot("provider-added")

        # 2. sign in through the browser and the deep link
        url = self.start_sign_in()
        self.expect_page(f"Signing in to {PROVIDER}", "Cancel")
        self.shot("sign-in-panel")
        callback = play_browser(url)
        if not callback.startswith("dev.tessera:/callback?"):
            raise Failure(f"the provider redirected to {callback}, not the deep link")
        deliver(callback, self.env)

        # 3. the account, verified and explained
        d.wait_text('[data-testid="account-name"]', "Alice Example")
        d.wait_text('[data-testid="id-token-verdict"]', "verified")
        d.wait_text('[data-testid="id-token"]', "Issuer: who created and signed the token")
        if d.find_all('[data-testid="sign-in-panel"]'):
            raise Failure("the sign-in panel is still open after the deep link")
        self.expect_page("alice@example.com", "Signed in as Alice Example", "signature", "nonce")
        self.shot("signed-in")
        d.scroll_to('[data-testid="id-token"]')
        self.shot("id-token-card")
        d.set_size(1280, 800)
        time.sleep(0.5)
        self.shot("signed-in-1280x800")
        d.set_size(1100, 720)
        if len(account_entries()) != 1:
            raise Failure(f"expected one account entry in the keychain, found {account_entries()}")

        # 4. refresh now changes the expiry
        before = d.text('[data-testid="account-expiry"]')
        time.sleep(1.2)  # expiry has one-second resolution
        d.click('[data-testid="refresh-now"]')
        result = d.wait_text('[data-testid="refresh-result"]', "Refreshed at")
        after = wait_for("a new expiry", lambda: (lambda t: t if t.split("(")[-1] != before.split("(")[-1] else None)(
            d.text('[data-testid="account-expiry"]')))
        if "rotated (" not in result:
            raise Failure(f"the refresh result does not report rotation: {result}")
        log(f"expiry {before!r} -> {after!r}")
        self.shot("refreshed")

        # 4b. a provider that does not answer: the wait shows, Cancel ends it at once, and the
        # refresh that the provider finally answers is kept (the next one works: with rotating
        # refresh tokens, losing the rotated one would make it fail)
        post_json(self.issuer + "/__test/sabotage", {"path": "/token", "kind": "stall"})
        d.click('[data-testid="refresh-now"]')
        get_json(self.issuer + "/__test/stalled?path=%2Ftoken")
        d.wait_text('[data-testid="wait"]', "Refreshing tokens")
        wait_for("the seconds waited", lambda: d.text('[data-testid="wait-elapsed"]') != "0 s")
        self.shot("waiting-for-provider")
        d.click('[data-testid="cancel-wait"]')
        d.wait_text('[data-testid="notice-error"]', "Stopped waiting for the provider")
        if d.find_all('[data-testid="wait"]'):
            raise Failure("the wait is still shown after Cancel")
        self.shot("wait-cancelled")
        d.click('[data-testid="notice-error"] button')
        post_json(self.issuer + "/__test/release", {"path": "/token"})
        time.sleep(1.2)  # the result names the second it was refreshed at
        shown = d.text('[data-testid="refresh-result"]') if d.find_all('[data-testid="refresh-result"]') else ""
        d.click('[data-testid="refresh-now"]')
        result = wait_for("a new refresh result", lambda: (lambda t: t if "Refreshed at" in t and t != shown else None)(
            d.text('[data-testid="refresh-result"]')))
        if "rotated (" not in result:
            raise Failure(f"the refresh after a cancelled wait does not report rotation: {result}")

        # 5. a callback with a wrong state: an error, nothing changes
        entries = account_entries()
        deliver("dev.tessera:/callback?code=forged&state=not-a-pending-sign-in&iss=" + urllib.parse.quote(self.issuer, safe=""), self.env)
        d.wait_text('[data-testid="notice-error"]', "does not belong to any sign-in in progress")
        self.expect_page("unknown_state", "Alice Example")
        if account_entries() != entries:
            raise Failure("the keychain changed after a forged callback")
        self.shot("wrong-state")

        # 6. sign out revokes and removes the keychain entry
        refresh_token = json.loads(account_entries()[0]["secret"])["refresh_token"]
        d.click('[data-testid="sign-out"]')
        d.find('[data-testid="sign-out-dialog"]')
        self.shot("sign-out-dialog")
        d.click('[data-testid="confirm-sign-out"]')
        d.wait_text('[data-testid="notice-info"]', "The provider revoked the refresh token")
        d.wait_text("body", "Sign in to an account")
        if account_entries():
            raise Failure(f"the keychain still holds the account: {account_entries()}")
        status, body = refresh_at_provider(self.issuer, refresh_token)
        if status == 200 or body.get("error") != "invalid_grant":
            raise Failure(f"the revoked refresh token still works at the provider: {status} {body}")
        log(f"refresh with the revoked token: {status} {body.get('error')}")
        self.shot("signed-out")

        # 7. cold start by a deep link for a flow of an earlier run
        url = self.start_sign_in()
        stale = play_browser(url)
        d.quit()
        time.sleep(0.5)
        d.start(args=[stale])
        d.drain_ipc()
        d.wait_text('[data-testid="notice-error"]', "no longer waiting")
        self.expect_page("flow_expired", "start it again")
        if account_entries():
            raise Failure("a stale callback created an account")
        self.shot("cold-start-expired")


def main() -> int:
    if not APP.is_file():
        print(f"e2e: {APP} is missing; build it with the UI embedded first", file=sys.stderr)
        return 2
    for tool in ("tauri-driver", "WebKitWebDriver", "Xvfb", "secret-tool", "node"):
        if not shutil.which(tool):
            print(f"e2e: {tool} is missing (run scripts/setup)", file=sys.stderr)
            return 2
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    # With the secret scan collecting, the app's data directory is kept for it.
    evidence = os.environ.get("TESSERA_EVIDENCE_DIR")
    if evidence:
        (Path(evidence) / "data").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tessera-e2e.", dir=Path(evidence) / "data" if evidence else None))
    started = time.monotonic()
    driver: WebDriver | None = None
    try:
        env = dict(os.environ)
        env.update({
            "DISPLAY": start_xvfb(procs),
            "WEBKIT_DISABLE_COMPOSITING_MODE": "1",
            "NO_AT_BRIDGE": "1",
            "TESSERA_DATA_DIR": str(scratch / "data"),
            "BROWSER": "true",  # the test plays the browser itself
            "GTK_A11Y": "none",
        })
        env.pop("TESSERA_DEMO_ISSUER", None)
        issuer = start_idp(procs, ARTIFACTS)
        port = free_port()
        procs.start("tauri-driver", ["tauri-driver", "--port", str(port), "--native-port", str(free_port())],
                    env=env, stdout=open(ARTIFACTS / "app.log", "w"), stderr=subprocess.STDOUT)
        driver = WebDriver(port, env)
        wait_for("tauri-driver", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
        driver.start()
        driver.drain_ipc()
        run = Run(driver, env, issuer)
        run.scenario()
        run.logto_organizations(procs)
        run.auth0_organizations(procs)
        run.stytch_magic_link(procs)
        run.stack_password_and_teams(procs)
        log(f"passed in {time.monotonic() - started:.1f} s; screenshots in {ARTIFACTS.relative_to(REPO)}")
        return 0
    except (Failure, OSError, subprocess.SubprocessError) as e:
        log(f"FAILED: {e}")
        if driver and driver.session:
            try:
                driver.screenshot(ARTIFACTS / "failure.png")
                log(f"screen at failure: {ARTIFACTS.relative_to(REPO)}/failure.png; page text:\n{driver.page_text()}")
            except Exception:  # noqa: BLE001
                pass
        log(f"app log: {ARTIFACTS.relative_to(REPO)}/app.log, provider log: {ARTIFACTS.relative_to(REPO)}/idp.log")
        return 1
    finally:
        if driver:
            driver.quit()
        procs.stop_all()
        if not evidence:
            shutil.rmtree(scratch, ignore_errors=True)
        release_document_portal()


def release_document_portal() -> None:
    """WebKitGTK wakes xdg-desktop-portal (where installed), which mounts the document portal
    at $XDG_RUNTIME_DIR/doc; unmount it so the keyring session can delete its scratch dir."""
    doc = Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "doc"
    if os.environ.get("TESSERA_KEYRING_SESSION") == "1" and os.path.ismount(doc):
        subprocess.run(["fusermount", "-u", "-z", str(doc)], capture_output=True, timeout=10)


if __name__ == "__main__":
    sys.exit(main())
