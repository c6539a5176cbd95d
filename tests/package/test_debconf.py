"""debconf templates (po-debconf) as shipped, the translation template in sync, and
debian/config's answer rules held to the updater's."""

from __future__ import annotations

import re
import shutil

import pytest
from pkgtools import REPO
from support.helpers import run

from debian import deb822

EXPECTED_TYPES = {
    "duckdns/token": "password",
    "duckdns/domains": "string",
    "duckdns/publish": "select",
    "duckdns/ipv6": "boolean",  # older versions' question: still read (preseeds)
    "duckdns/recipe_found": "note",
    "duckdns/token_rejected": "error",
    "duckdns/unreachable": "note",
    "duckdns/invalid_token": "error",
    "duckdns/invalid_domains": "error",
    "duckdns/unconfigured": "note",
}


def shipped_templates(built) -> dict[str, deb822.Deb822]:
    text = (built.ctrl / "templates").read_text()
    return {p["Template"]: p for p in deb822.Deb822.iter_paragraphs(text)}


def test_template_types(built):
    templates = shipped_templates(built)
    assert {name: t["Type"] for name, t in templates.items()} == EXPECTED_TYPES


def test_token_has_no_default(built):
    assert "Default" not in shipped_templates(built)["duckdns/token"]


def test_publish_choices_are_the_config_families(built):
    """The select's C values are the ones the updater maps to its ipv4 and ipv6 keys."""
    from duckdns import config

    publish = shipped_templates(built)["duckdns/publish"]
    assert publish["Choices-C"].split(", ") == list(config.PUBLISH)
    assert publish["Default"] == "ipv4"
    assert publish["Choices"] == "IPv4 only, IPv4 and IPv6, IPv6 only"


def test_unconfigured_note_names_the_command(built):
    assert (
        "dpkg-reconfigure duckdns"
        in shipped_templates(built)["duckdns/unconfigured"]["Description"]
    )


def test_source_templates_are_translatable():
    text = (REPO / "debian/templates").read_text()
    paragraphs = list(deb822.Deb822.iter_paragraphs(text))
    assert paragraphs and all("_Description" in p for p in paragraphs)
    assert "[type: gettext/rfc822deb] templates" in (REPO / "debian/po/POTFILES.in").read_text()


def test_templates_pot_is_up_to_date(tmp_path):
    """debian/po/templates.pot holds every string of debian/templates (debconf-updatepo)."""
    debian = tmp_path / "debian"
    shutil.copytree(REPO / "debian", debian)
    run(["debconf-updatepo"], cwd=debian)

    def msgids(path):
        return set(re.findall(r'^msgid "(.+)"$', path.read_text(), re.M)) | {
            "".join(re.findall(r'"(.*)"', block))
            for block in re.findall(r'^msgid ""\n((?:".*"\n)+)', path.read_text(), re.M)
        }

    assert msgids(REPO / "debian/po/templates.pot") == msgids(debian / "po/templates.pot")


# -- debian/config's copy of the updater's answer rules ---------------------------------------
# debian/config runs at apt's preconfigure step, before the package (and the updater) is
# unpacked, so it carries the rules of duckdns.config.parse_domains and check_token in shell
# builtins. They are held to the Python rules here: every example, and a few thousand random
# strings, must get the same verdict and the same normal form from both.

DOMAIN_EXAMPLES = [
    "piserver",
    "piserver,,cloud",
    "piserver.duckdns.org.",
    "piserver.duckdns.org..",
    "PiServer.DuckDNS.Org",
    " piserver , cloud ",
    "\tpiserver\r",
    ",piserver,",
    "a,b,c,d,e,f,g",  # more than an account holds: check warns, neither refuses
    "a,A,a.,a.duckdns.org",
    "a" * 63,
    "a" * 64,
    "a" * 63 + ".duckdns.org",
    "x.duckdns.org.duckdns.org",
    ".duckdns.org",
    "duckdns.org",
    "",
    " ",
    ",",
    "pi_server",
    "-pi",
    "pi-",
    "p-i",
    "0",
    "pi server",
    "pi.server",
    "*",
    "$(id)",
    '"piserver"',
    "'piserver'",
    "piserver;cloud",
    "c0ffee00-dead-beef-0000-123456789abc",
    "C0FFEE00-DEAD-BEEF-0000-123456789ABC",
    "piserver, c0ffee00-dead-beef-0000-123456789abc",
    "c0ffee00-dead-beef-0000-123456789abcd",
    "pi\u00e9",
    "\u212a",  # the Kelvin sign: str.lower() makes it "k"
    "\u00a0piserver",  # no-break space: str.strip() drops it, a POSIX shell does not
    "piserver\u0085",
    "\u0130",
]
TOKEN_EXAMPLES = [
    "c0ffee00-dead-beef-0000-123456789abc",
    "C0FFEE00-DEAD-BEEF-0000-123456789ABC",
    "  c0ffee00-dead-beef-0000-123456789abc\t",
    "c0ffee00-dead-beef-0000-123456789ab",
    "c0ffee00-dead-beef-0000-123456789abcd",
    "c0ffee00deadbeef0000123456789abc",
    "g0ffee00-dead-beef-0000-123456789abc",
    "c0ffee00-dead-beef-0000-123456789ab\u00e9",
    "\u00a0c0ffee00-dead-beef-0000-123456789abc",
    "c0ffee00-dead-beef-0000-123456789abc\u0085",
    "",
    " ",
]


def random_answers(seed: int, count: int) -> list[str]:
    """Strings built from the characters the rules treat specially, and mutated names."""
    import random

    rng = random.Random(seed)
    alphabet = "aZz09-._,, \t\r\x0b\x0c\u00e9\u212a\u00a0\u0130" + "duckdns.org" * 2
    found = []
    for _ in range(count):
        found.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))))
        name = rng.choice(DOMAIN_EXAMPLES)
        at = rng.randint(0, len(name))
        found.append(name[:at] + rng.choice(alphabet) + name[at:])
    return found


def shell_verdicts(script: str, function: str, result: str, values: list[str], lang: str):
    """``function`` of the shipped script's rules applied to each value, in /bin/sh (dash)."""
    text = script[
        script.index("# -- The answers' rules.") : script.index("# -- end of the answers'")
    ]
    assert "normalize_domains()" in text and "valid_token()" in text
    program = (
        text
        + f'while IFS= read -r line; do if {function} "$line"; then printf "ok %s\\n" "${result}"'
        + "; else echo refused; fi; done"
    )
    proc = run(
        ["/bin/sh", "-c", program],
        input="".join(f"{value}\n" for value in values),
        env={"PATH": "/usr/bin:/bin", "LANG": lang},
    )
    lines = proc.stdout.split("\n")[:-1]
    assert len(lines) == len(values)
    return [line[3:] if line.startswith("ok ") else None for line in lines]


def python_verdict(rule, value: str) -> str | None:
    from duckdns import config

    try:
        made = rule(value, "the answer")
    except config.ConfigError:
        return None
    return made if isinstance(made, str) else ",".join(made)


@pytest.mark.parametrize("lang", ["C.UTF-8", "C"])
def test_debian_config_accepts_the_domain_lists_the_updater_accepts(built, lang):
    from duckdns import config

    script = (built.ctrl / "config").read_text()
    values = [v for v in DOMAIN_EXAMPLES + random_answers(27, 1500) if "\n" not in v]
    shell = shell_verdicts(script, "normalize_domains", "DOMAINS", values, lang)
    python = [python_verdict(config.parse_domains, value) for value in values]
    differ = [(v, s, p) for v, s, p in zip(values, shell, python, strict=True) if s != p]
    assert differ == []
    # The table means something: both verdicts occur, and the examples of the issue pass.
    assert None in python and python[:3] == ["piserver", "piserver,cloud", "piserver"]


def test_debian_config_accepts_the_tokens_the_updater_accepts(built):
    from duckdns import config

    script = (built.ctrl / "config").read_text()
    values = TOKEN_EXAMPLES + [v.replace(",", "-") for v in random_answers(5, 300)]
    shell = shell_verdicts(script, "valid_token", "TOKEN", values, "C.UTF-8")
    python = [python_verdict(config.check_token, value) for value in values]
    assert [(v, s, p) for v, s, p in zip(values, shell, python, strict=True) if s != p] == []
    assert python[:3] == ["c0ffee00-dead-beef-0000-123456789abc"] * 3
