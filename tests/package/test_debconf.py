"""debconf templates (po-debconf) as shipped, and the translation template in sync."""

from __future__ import annotations

import re
import shutil

from pkgtools import REPO
from support.helpers import run

from debian import deb822

EXPECTED_TYPES = {
    "duckdns/token": "password",
    "duckdns/domains": "string",
    "duckdns/ipv6": "boolean",
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
