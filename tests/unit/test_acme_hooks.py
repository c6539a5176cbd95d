"""The certbot DNS-01 hooks (hooks/certbot-auth-hook, hooks/certbot-cleanup-hook).

They are run as certbot runs them (a shell command line, CERTBOT_* in the
environment) against the real-TLS test DuckDNS server. DUCKDNS_COMMAND points at a
wrapper that runs this tree's updater with Debian's Python and records its argv and
environment, so the tests can prove the token never travels through either.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import CANARY, DEBIAN_PYTHON, ROOT, assert_no_canary

HOOKS = ROOT / "hooks"
AUTH = HOOKS / "certbot-auth-hook"
CLEANUP = HOOKS / "certbot-cleanup-hook"
VALUE = "gYvyuKSEz-Sa58khnK9KUc0MUu3C5WDf_7qRDwlDAcM"  # a DNS-01 value: 43 base64url chars


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


def run_hook(
    hook: Path,
    cfg: Path | None,
    wrapper,
    domain: str = "piserver.duckdns.org",
    validation: str | None = VALUE,
    **extra: str,
) -> subprocess.CompletedProcess:
    """Run ``hook`` the way certbot does: through the shell, CERTBOT_* in the environment."""
    command, _ = wrapper
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DUCKDNS_COMMAND": str(command),
        "DUCKDNS_ACME_WAIT": "0",
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
    proc = subprocess.run(str(hook), capture_output=True, text=True, **sh)  # noqa: S602
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


@pytest.mark.parametrize(
    "domain",
    [
        "piserver.duckdns.org",
        "*.piserver.duckdns.org",  # a wildcard certificate
        "www.piserver.duckdns.org",  # a name below the DuckDNS name
        "PiServer.DuckDNS.org",
    ],
)
def test_auth_sets_the_txt_record_and_cleanup_clears_it(duck, conf, wrapper, domain):
    cfg = conf()
    proc = run_hook(AUTH, cfg, wrapper, domain=domain)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == VALUE
    [query] = txt_requests(duck)
    assert (query["domains"], query["token"], query["txt"]) == ("piserver", CANARY, VALUE)
    proc = run_hook(CLEANUP, cfg, wrapper, domain=domain)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == ""
    assert txt_requests(duck)[-1]["clear"] == "true"
    assert len(duck.requests) == 2
    # The config travels as --config; the token never through argv or environment.
    argvs = calls(wrapper)
    assert all(f"[--config] [{cfg}]" in a for a in argvs)
    assert any("[txt] [set] [--]" in a for a in argvs)


def test_second_configured_domain_and_a_validation_starting_with_a_dash(duck, conf, wrapper):
    cfg = conf(domains="piserver, cloud")
    value = "-" + VALUE[1:]  # base64url may start with "-": must not be taken for an option
    proc = run_hook(AUTH, cfg, wrapper, domain="cloud.duckdns.org", validation=value)
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == value


def test_waits_the_configured_time_and_says_so(duck, conf, wrapper):
    cfg = conf()
    start = time.monotonic()
    proc = run_hook(AUTH, cfg, wrapper, DUCKDNS_ACME_WAIT="2")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start >= 2
    assert "waiting 2 s" in proc.stderr


@pytest.mark.parametrize("wait", ["abc", "-1", "601", "1.5"])
def test_a_bad_wait_is_refused_before_any_request(duck, conf, wrapper, wait):
    proc = run_hook(AUTH, conf(), wrapper, DUCKDNS_ACME_WAIT=wait)
    assert proc.returncode == 1
    assert "DUCKDNS_ACME_WAIT" in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize(
    "domain, message",
    [
        ("other.duckdns.org", "not configured"),
        ("www.other.duckdns.org", "not configured"),
        ("piserver.example.com", "not a DuckDNS name"),
        ("duckdns.org", "not a DuckDNS name"),
        ("piserver.duckdns.org.example.com", "not a DuckDNS name"),
    ],
)
def test_names_outside_the_configured_duckdns_names_are_refused(
    duck, conf, wrapper, domain, message
):
    for hook in (AUTH, CLEANUP):
        proc = run_hook(hook, conf(), wrapper, domain=domain)
        assert proc.returncode == 1
        assert message in proc.stderr and domain in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize(
    "extra",
    [
        {
            "CERTBOT_REMAINING_CHALLENGES": "1",
            "CERTBOT_ALL_DOMAINS": "piserver.duckdns.org,piserver.duckdns.org",
        },
        {"CERTBOT_ALL_DOMAINS": "piserver.duckdns.org,cloud.duckdns.org"},
    ],
)
def test_several_challenges_in_one_run_are_refused_with_the_two_step_advice(
    duck, conf, wrapper, extra
):
    proc = run_hook(AUTH, conf(domains="piserver, cloud"), wrapper, **extra)
    assert proc.returncode == 1
    assert "only one TXT value" in proc.stderr
    assert "-d piserver.duckdns.org alone" in proc.stderr
    assert duck.requests == []


def test_missing_certbot_variables_are_explained(duck, conf, wrapper):
    proc = run_hook(AUTH, conf(), wrapper, validation=None)
    assert proc.returncode == 1 and "CERTBOT_VALIDATION is not set" in proc.stderr
    proc = run_hook(AUTH, conf(), wrapper, validation="not a value!")
    assert proc.returncode == 1 and "not an ACME DNS-01 value" in proc.stderr
    proc = run_hook(AUTH, conf(), wrapper, domain="")
    assert proc.returncode == 1 and "CERTBOT_DOMAIN is not set" in proc.stderr
    assert duck.requests == []


def test_a_config_others_can_read_is_refused_without_a_request(duck, conf, wrapper):
    cfg = conf(mode=0o644)
    proc = run_hook(AUTH, cfg, wrapper)
    assert proc.returncode == 1
    assert f"chmod 600 {cfg}" in proc.stderr
    assert "configuration cannot be used" in proc.stderr
    assert duck.requests == []


def test_a_ko_answer_fails_the_hook(duck, conf, wrapper):
    cfg = conf(token="11111111-2222-3333-4444-555555555555")
    proc = run_hook(AUTH, cfg, wrapper)
    assert proc.returncode == 1
    assert (
        "KO" in proc.stderr
        and "setting the TXT record of piserver.duckdns.org failed" in proc.stderr
    )
    assert len(duck.requests) == 1


def test_without_duckdns_config_the_default_config_is_used(duck, conf, wrapper, tmp_path):
    """No DUCKDNS_CONFIG: duckdns is called without --config (its default file)."""
    cfg = conf()
    proc = run_hook(AUTH, None, wrapper, STATE_DIRECTORY=str(cfg.parent))
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == VALUE
    assert all("--config" not in a for a in calls(wrapper))


def test_hooks_are_executable_posix_sh():
    for hook in (AUTH, CLEANUP):
        assert os.access(hook, os.X_OK), f"{hook} must be executable"
        assert hook.read_text().startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n", str(hook)], check=True)
        proc = (
            subprocess.run(["checkbashisms", str(hook)], capture_output=True, text=True)
            if Path("/usr/bin/checkbashisms").exists()
            else None
        )
        if proc is not None:
            assert proc.returncode == 0, proc.stdout + proc.stderr
