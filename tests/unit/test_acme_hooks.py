"""The certbot DNS-01 hooks (hooks/certbot-auth-hook, hooks/certbot-cleanup-hook).

They are run as certbot runs them (a shell command line, CERTBOT_* in the
environment) against the real-TLS test DuckDNS server and a loopback name server
that plays DuckDNS's: it serves the TXT value the test DuckDNS server holds, each
new value only after a delay (tests/support/dnsserver.py LaggingZone), and the CNAMEs of
custom domains. DUCKDNS_ACME_NAMESERVER points the hooks at it, so no question
leaves the machine. DUCKDNS_COMMAND points at a wrapper that runs this tree's
updater with Debian's Python and records its argv and environment, so the tests
can prove the token never travels through either.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from support.display import HOSTILE, assert_displayable
from support.dnsserver import DNSServer, LaggingZone
from support.helpers import CANARY, DEBIAN_PYTHON, ROOT, assert_no_canary

HOOKS = ROOT / "hooks"
AUTH = HOOKS / "certbot-auth-hook"
CLEANUP = HOOKS / "certbot-cleanup-hook"
VALUE = "gYvyuKSEz-Sa58khnK9KUc0MUu3C5WDf_7qRDwlDAcM"  # a DNS-01 value: 43 base64url chars
OLD_FIXED_WAIT = 30  # what the auth hook slept before it asked the name servers

# Custom domains delegating their challenge to DuckDNS, in the forms peers document:
# to _acme-challenge.NAME.duckdns.org (Home Assistant add-on DOCS.md, lego) and to
# NAME.duckdns.org itself (certbot-dns-duckdns Readme, acme.sh --domain-alias), also
# through another CNAME (certbot-dns-duckdns Readme).
RECORDS = [
    "_acme-challenge.example.com:CNAME:_acme-challenge.piserver.duckdns.org",
    "_acme-challenge.home.example.net:CNAME:piserver.duckdns.org",
    "_acme-challenge.chain.example.com:CNAME:step.example.com",
    "step.example.com:CNAME:cloud.duckdns.org",
    "_acme-challenge.elsewhere.example.com:CNAME:_acme-challenge.other.duckdns.org",
    "_acme-challenge.offsite.example.com:CNAME:acme.example.org",
    "acme.example.org:TXT:not-duckdns",
]


@pytest.fixture
def zone(duck) -> LaggingZone:
    """DuckDNS's name servers: the test DuckDNS server's TXT value for each configured name.

    The look-alike keeps one TXT value (its ``txt``), served here for both names it knows.
    """
    return LaggingZone(
        "duckdns.org",
        lambda: {n: duck.records.get(n, {}).get("txt", "") for n in ("piserver", "cloud")},
    )


@pytest.fixture
def dns(zone):
    with DNSServer(RECORDS, zones=[zone]) as srv:
        yield srv


@pytest.fixture
def wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """A duckdns command for the hooks: this tree's updater, logging argv and env."""
    log = tmp_path / "calls.log"
    script = tmp_path / "duckdns-wrapper"
    script.write_text(
        "#!/bin/sh\n"
        f"{{ printf 'ARGV:'; printf ' [%s]' \"$@\"; echo; env; }} >>'{log}'\n"
        f"PYTHONPATH='{ROOT}' exec {DEBIAN_PYTHON} -m duckdns \"$@\"\n"
    )
    script.chmod(0o755)
    return script, log


@pytest.fixture
def hook(conf, wrapper, dns):
    """Run a hook the way certbot does, against ``duck`` and ``dns``; see run_hook."""

    def run(which: Path = AUTH, domain: str = "piserver.duckdns.org", **kw):
        cfg = kw.pop("cfg", None) or conf(domains="piserver, cloud")
        return run_hook(which, cfg, wrapper, dns, domain=domain, **kw)

    return run


def run_hook(
    hook: Path,
    cfg: Path | None,
    wrapper,
    dns: DNSServer,
    domain: str = "piserver.duckdns.org",
    validation: str | None = VALUE,
    **extra: str | None,
) -> subprocess.CompletedProcess:
    """Run ``hook`` the way certbot does: through the shell, CERTBOT_* in the environment.

    The elapsed time is in the result's ``elapsed``.
    """
    command, _ = wrapper
    host, port = dns.address
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DUCKDNS_COMMAND": str(command),
        "DUCKDNS_ACME_WAIT": "10",
        "DUCKDNS_ACME_NAMESERVER": f"{host}:{port}",
        "CERTBOT_DOMAIN": domain,
        "CERTBOT_ALL_DOMAINS": domain,
        "CERTBOT_REMAINING_CHALLENGES": "0",
    }
    if cfg is not None:
        env["DUCKDNS_CONFIG"] = str(cfg)
    if validation is not None:
        env["CERTBOT_VALIDATION"] = validation
    env.update(extra)
    env = {k: v for k, v in env.items() if v is not None}
    # certbot runs a hook as a shell command line (shell=True) with CERTBOT_* set.
    cwd = cfg.parent if cfg else ROOT
    sh = {"shell": True, "env": env, "cwd": cwd, "timeout": 120}
    start = time.monotonic()
    proc = subprocess.run(str(hook), capture_output=True, text=True, **sh)  # noqa: S602
    proc.elapsed = time.monotonic() - start
    assert_no_canary(proc.stdout, proc.stderr, where=f"the output of {hook.name}")
    return proc


def calls(wrapper) -> list[str]:
    _, log = wrapper
    if not log.exists():
        return []
    text = log.read_text()
    assert_no_canary(text, where="the duckdns command's argv or environment")
    return [line for line in text.splitlines() if line.startswith("ARGV:")]


def txt_requests(duck) -> list[dict]:
    return [r["query"] for r in duck.requests if "txt" in r["query"]]


def txt_questions(dns: DNSServer, owner: str) -> list:
    return [q for q in dns.queries if q.rtype == "TXT" and q.name.lower() == owner]


@pytest.mark.parametrize(
    "domain, subname, owner",
    [
        ("piserver.duckdns.org", "piserver", "_acme-challenge.piserver.duckdns.org"),
        ("*.piserver.duckdns.org", "piserver", "_acme-challenge.piserver.duckdns.org"),
        # a name below the DuckDNS name: DuckDNS answers for it with the same TXT value
        ("www.piserver.duckdns.org", "piserver", "_acme-challenge.www.piserver.duckdns.org"),
        ("PiServer.DuckDNS.org", "piserver", "_acme-challenge.piserver.duckdns.org"),
        ("cloud.duckdns.org", "cloud", "_acme-challenge.cloud.duckdns.org"),
        # custom domains whose _acme-challenge is a CNAME to a configured DuckDNS name
        ("example.com", "piserver", "_acme-challenge.piserver.duckdns.org"),
        ("*.example.com", "piserver", "_acme-challenge.piserver.duckdns.org"),
        ("home.example.net", "piserver", "piserver.duckdns.org"),
        ("chain.example.com", "cloud", "cloud.duckdns.org"),
    ],
)
def test_auth_sets_the_txt_record_waits_for_it_and_cleanup_clears_it(
    duck, dns, hook, wrapper, domain, subname, owner
):
    proc = hook(AUTH, domain)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == VALUE
    # Exactly one request per challenge, for the one DuckDNS name the challenge is asked at.
    [query] = txt_requests(duck)
    assert (query["domains"], query["token"], query["txt"]) == (subname, CANARY, VALUE)
    assert "the new TXT value is served after" in proc.stderr, proc.stderr
    assert txt_questions(dns, owner), f"the wait asked for {owner}: {dns.queries}"
    proc = hook(CLEANUP, domain)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == ""
    assert txt_requests(duck)[-1] == {
        "domains": subname,
        "token": CANARY,
        "txt": "",
        "verbose": "true",
        "clear": "true",
    }
    assert len(duck.requests) == 2
    # The config travels as --config; the token never through argv or environment.
    argvs = calls(wrapper)
    assert all("[--config] [" in a for a in argvs)
    assert any(f"[txt] [set] [--for={domain}]" in a for a in argvs)


def test_a_validation_starting_with_a_dash(duck, hook):
    value = "-" + VALUE[1:]  # base64url may start with "-": must not be taken for an option
    proc = hook(AUTH, "cloud.duckdns.org", validation=value)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == value


def test_returns_as_soon_as_the_value_is_served(duck, zone, dns, hook):
    """3 s until DuckDNS's name servers serve it: the hook is back well before the old 30 s."""
    zone.delay = 3
    proc = hook(AUTH, DUCKDNS_ACME_WAIT=str(OLD_FIXED_WAIT))
    print(f"served after 3 s: the auth hook took {proc.elapsed:.1f} s")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert 3 <= proc.elapsed < 3 + 2 + 3, proc.stderr  # the delay, one poll, start-up
    assert proc.elapsed < OLD_FIXED_WAIT / 3
    assert len(txt_requests(duck)) == 1


def test_waits_through_a_delay_asking_every_2_s(duck, zone, dns, hook):
    """A value served 6 s late: three rounds of questions 2 s apart (acme.POLL_INTERVAL, in
    the hook's own process), then the hook returns. A longer delay only adds rounds; the
    limit it stops at is test_gives_up_at_the_limit_with_a_warning_and_lets_certbot_decide's."""
    zone.delay = 6
    proc = hook(AUTH, DUCKDNS_ACME_WAIT="60")
    print(f"served after 6 s: the auth hook took {proc.elapsed:.1f} s")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert 6 <= proc.elapsed < 6 + 2 + 3, proc.stderr
    asked = txt_questions(dns, "_acme-challenge.piserver.duckdns.org")
    assert 3 <= len(asked) <= 5, f"every 2 s for 6 s: {len(asked)} questions"
    assert len(duck.requests) == 1, "the record is set once, however long the wait"


def test_gives_up_at_the_limit_with_a_warning_and_lets_certbot_decide(duck, zone, dns, hook):
    zone.delay = 600
    proc = hook(AUTH, DUCKDNS_ACME_WAIT="3")
    print(f"never served, DUCKDNS_ACME_WAIT=3: the auth hook took {proc.elapsed:.1f} s")
    assert proc.returncode == 0, proc.stderr
    # The whole hook: two Python starts and the HTTPS request around the wait, which a
    # loaded machine slows (6.3 s at load 9); the questions asked show where it stopped.
    assert 3 <= proc.elapsed < 3 + 10, proc.stderr
    asked = txt_questions(dns, "_acme-challenge.piserver.duckdns.org")
    assert 2 <= len(asked) <= 3, f"every 2 s for 3 s: {len(asked)} questions"
    assert "warning: the new TXT value of _acme-challenge.piserver.duckdns.org" in proc.stderr
    assert "not yet served after 3 s" in proc.stderr
    assert "1 of 1 answering name servers serve another value" in proc.stderr
    assert duck.txt == VALUE and len(duck.requests) == 1


def test_wait_0_sets_the_record_and_asks_nothing(duck, dns, hook):
    proc = hook(AUTH, DUCKDNS_ACME_WAIT="0")
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == VALUE
    assert dns.queries == []


@pytest.mark.parametrize("wait", ["abc", "-1", "601", "1.5"])
def test_a_bad_wait_is_refused_before_any_request(duck, dns, hook, wait):
    proc = hook(AUTH, DUCKDNS_ACME_WAIT=wait)
    assert proc.returncode == 1
    assert "DUCKDNS_ACME_WAIT" in proc.stderr
    assert duck.requests == [] and dns.queries == []


def test_a_bad_nameserver_is_refused_before_any_request(duck, hook):
    proc = hook(AUTH, DUCKDNS_ACME_NAMESERVER="ns1.example.net")
    assert proc.returncode == 1
    assert "--nameserver" in proc.stderr and "is not an IP address" in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize(
    "domain, message",
    [
        ("other.duckdns.org", "belongs to other.duckdns.org, which is not configured"),
        ("www.other.duckdns.org", "belongs to other.duckdns.org, which is not configured"),
        ("elsewhere.example.com", "belongs to other.duckdns.org (through"),
        ("piserver.example.com", "is not a CNAME to one"),
        ("offsite.example.com", "leads to _acme-challenge.offsite.example.com -> acme.example"),
        ("duckdns.org", "not a DuckDNS name"),
        ("-x.example..com", "is not a domain name"),
        ("piserver.duckdns.org.example.com", "not a DuckDNS name"),
    ],
)
def test_names_outside_the_configured_duckdns_names_are_refused(duck, hook, domain, message):
    for which in (AUTH, CLEANUP):
        proc = hook(which, domain)
        assert proc.returncode == 1
        assert message in proc.stderr and domain in proc.stderr, proc.stderr
    assert duck.requests == []


def test_a_cname_that_cannot_be_looked_up_fails_before_any_request(duck, dns, hook):
    dns.behaviour = "silent"
    proc = hook(AUTH, "example.com")
    assert proc.returncode == 1
    assert "cannot look up _acme-challenge.example.com" in proc.stderr, proc.stderr
    assert "setting the TXT record for example.com failed (exit 75" in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize(
    "extra, advice",
    [
        (  # -d piserver.duckdns.org -d '*.piserver.duckdns.org': the first challenge
            {
                "CERTBOT_REMAINING_CHALLENGES": "1",
                "CERTBOT_ALL_DOMAINS": "piserver.duckdns.org,*.piserver.duckdns.org",
            },
            "-d piserver.duckdns.org alone",
        ),
        (  # the same, listed the other way round
            {
                "CERTBOT_REMAINING_CHALLENGES": "1",
                "CERTBOT_ALL_DOMAINS": "*.piserver.duckdns.org,piserver.duckdns.org",
            },
            "-d '*.piserver.duckdns.org' alone",
        ),
        ({"CERTBOT_ALL_DOMAINS": "piserver.duckdns.org,cloud.duckdns.org"}, "-d piserver"),
    ],
)
def test_several_challenges_in_one_run_are_refused_with_the_two_step_advice(
    duck, dns, hook, extra, advice
):
    proc = hook(AUTH, **extra)
    assert proc.returncode == 1
    assert "only one TXT value per name" in proc.stderr
    assert advice in proc.stderr, proc.stderr
    assert duck.requests == [], "refused before any request to DuckDNS"
    assert dns.queries == [], "and before any DNS question"


def test_missing_certbot_variables_are_explained(duck, hook):
    proc = hook(AUTH, validation=None)
    assert proc.returncode == 1 and "CERTBOT_VALIDATION is not set" in proc.stderr
    proc = hook(AUTH, validation="not a value!")
    assert proc.returncode == 1 and "not an ACME DNS-01 value" in proc.stderr
    proc = hook(AUTH, domain="")
    assert proc.returncode == 1 and "CERTBOT_DOMAIN is not set" in proc.stderr
    assert duck.requests == []


def test_a_config_others_can_read_is_refused_without_a_request(duck, conf, hook):
    cfg = conf(mode=0o644)
    proc = hook(AUTH, cfg=cfg)
    assert proc.returncode == 1
    assert f"chmod 600 {cfg}" in proc.stderr
    assert "setting the TXT record for piserver.duckdns.org failed (exit 78" in proc.stderr
    assert duck.requests == []


def test_a_ko_answer_fails_the_hook_without_waiting(duck, dns, conf, hook):
    cfg = conf(token="11111111-2222-3333-4444-555555555555")
    proc = hook(AUTH, cfg=cfg)
    assert proc.returncode == 1
    assert "KO" in proc.stderr
    assert "setting the TXT record for piserver.duckdns.org failed (exit 1" in proc.stderr
    assert len(duck.requests) == 1, "KO is never retried"
    assert dns.queries == []


def test_without_duckdns_config_the_default_config_is_used(duck, dns, conf, wrapper):
    """No DUCKDNS_CONFIG: duckdns is called without --config (its default file)."""
    cfg = conf()
    proc = run_hook(AUTH, None, wrapper, dns, STATE_DIRECTORY=str(cfg.parent))
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == VALUE
    assert all("--config" not in a for a in calls(wrapper))


def test_hooks_are_executable_posix_sh():
    for which in (AUTH, CLEANUP):
        assert os.access(which, os.X_OK), f"{which} must be executable"
        assert which.read_text().startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n", str(which)], check=True)
        proc = (
            subprocess.run(["checkbashisms", str(which)], capture_output=True, text=True)
            if Path("/usr/bin/checkbashisms").exists()
            else None
        )
        if proc is not None:
            assert proc.returncode == 0, proc.stdout + proc.stderr


# -- certbot's environment is never printed raw ------------------------------------------------

CERTBOT_VARIABLES = [
    "CERTBOT_DOMAIN",
    "CERTBOT_ALL_DOMAINS",
    "CERTBOT_VALIDATION",
    "CERTBOT_REMAINING_CHALLENGES",
    "CERTBOT_TOKEN",  # HTTP-01's, not read here (certbot sets it for DNS-01 hooks too)
    "CERTBOT_AUTH_OUTPUT",  # what the auth hook printed, given to the cleanup hook: not read
]
# What the hooks can be refused for, in a message naming the variable but not its value.
REFUSED = {
    "CERTBOT_DOMAIN": "CERTBOT_DOMAIN is not a domain name",
    "CERTBOT_ALL_DOMAINS": "CERTBOT_ALL_DOMAINS is not a list of domain names",
    "CERTBOT_VALIDATION": "CERTBOT_VALIDATION is not an ACME DNS-01 value",
    "CERTBOT_REMAINING_CHALLENGES": "this certificate needs several DNS challenges",
}
HOOK_TEXTS = ["newline-priority", "carriage-return", "escape-sequences", "separators"]


@pytest.mark.parametrize("which", [AUTH, CLEANUP], ids=["auth", "cleanup"])
@pytest.mark.parametrize("text", [HOSTILE[name] for name in HOOK_TEXTS], ids=HOOK_TEXTS)
@pytest.mark.parametrize("variable", CERTBOT_VARIABLES)
def test_hostile_certbot_values_never_reach_the_output_raw(duck, hook, which, variable, text):
    """A newline, "<3>", an escape sequence or a line separator in any CERTBOT_* variable:
    refused or ignored, never printed (the hook's own die and the program's lines), so
    nothing forges a line in certbot's log or the journal (the program runs as under
    systemd here: each of its lines carries its own priority)."""
    if variable == "CERTBOT_DOMAIN":
        proc = hook(which, domain=text, JOURNAL_STREAM="8:1")
    elif variable == "CERTBOT_VALIDATION":
        proc = hook(which, validation=text, JOURNAL_STREAM="8:1")
    else:
        proc = hook(which, **{variable: text}, JOURNAL_STREAM="8:1")
    assert_displayable(proc.stdout, proc.stderr, where=f"output of {which.name}")
    assert text not in proc.stderr and "FAKE" not in proc.stderr, proc.stderr
    # The auth hook reads every variable but the last two; the cleanup hook only the names.
    cleanup_reads = ("CERTBOT_DOMAIN", "CERTBOT_ALL_DOMAINS")
    if variable in REFUSED and (which == AUTH or variable in cleanup_reads):
        assert proc.returncode == 1, proc.stderr
        assert REFUSED[variable] in proc.stderr, proc.stderr
        assert duck.requests == []
    else:
        assert proc.returncode == 0, proc.stderr
        assert len(duck.requests) == 1
