"""The built .deb: name, version, control fields, files, maintainer scripts."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pkgtools import OLD_POSTINST_COMMIT, PY, REPO
from support.helpers import run

from debian import deb822


def relations(built) -> list[list[dict]]:
    return deb822.PkgRelation.parse_relations(built.control["Depends"])


def test_file_name_and_version_come_from_setup_py(built):
    init = (REPO / "duckdns" / "__init__.py").read_text()
    assert f'__version__ = "{built.version}"' in init
    assert built.control["Version"] == f"{built.version}-{built.revision}"
    assert built.deb.name == f"duckdns_{built.version}-{built.revision}_all.deb"


def test_control_fields(built):
    c = built.control
    assert c["Package"] == "duckdns"
    assert c["Architecture"] == "all"
    assert c["Section"] == "net"
    assert "None" not in c["Maintainer"] and "@" in c["Maintainer"]
    # stdeb cuts setup.py's description at 60 characters, mid-word if need be.
    synopsis = c["Description"].splitlines()[0].strip()
    full = run([PY, "setup.py", "--description"], cwd=REPO).stdout.strip().splitlines()[-1]
    assert synopsis == full, f"synopsis {synopsis!r} is not setup.py's {full!r}"


def test_depends(built):
    groups = relations(built)
    names = [{alt["name"] for alt in g} for g in groups]
    assert {"python3-requests"} in names
    assert any("debconf" in g for g in names), built.control["Depends"]
    py3 = [alt for g in groups for alt in g if alt["name"] == "python3"]
    assert py3 and py3[0]["archqual"] == "any", built.control["Depends"]


def test_source_package_beside_the_deb(built):
    assert built.dsc.exists()
    dsc = deb822.Dsc(built.dsc.read_text())
    assert dsc["Source"] == "duckdns"
    assert dsc["Version"] == f"{built.version}-{built.revision}"
    build_deps = {
        alt["name"]: alt["version"]
        for group in deb822.PkgRelation.parse_relations(dsc["Build-Depends"])
        for alt in group
    }
    assert ("debhelper", (">=", "13")) in [
        (g[0]["name"], g[0]["version"])
        for g in deb822.PkgRelation.parse_relations(dsc["Build-Depends"])
    ], dsc["Build-Depends"]
    assert "po-debconf" in build_deps and "dh-python" in build_deps
    for f in dsc["Files"]:
        assert (built.dsc.parent / f["name"]).exists(), f["name"]


def test_program_and_module_installed(built):
    exe = built.root / "usr/bin/duckdns"
    assert exe.is_file() and os.access(exe, os.X_OK)
    first = exe.read_text().splitlines()[0]
    assert first == "#!/usr/bin/python3", first
    assert (built.root / "usr/lib/python3/dist-packages/duckdns/__init__.py").is_file()
    for page in (REPO / "debian/duckdns.manpages").read_text().split():
        name, section = Path(page).name, Path(page).suffix[1:]
        assert (built.root / f"usr/share/man/man{section}/{name}.gz").is_file(), page
    assert (built.root / "usr/share/man/man1/duckdns.1.gz").is_file()
    assert (built.root / "usr/share/doc/duckdns/copyright").is_file()


APT_SNIPPET = "etc/apt/apt.conf.d/51duckdns-unattended-upgrades"
BACKUP_LIST = "etc/backup-paths.d/duckdns.list"
IFUP_TRIGGER = "etc/network/if-up.d/duckdns"


def test_conffiles_are_the_three_fixed_files(built):
    """Nothing an admin is expected to edit ships in /etc. The three conffiles are
    constant files installed by dh_install: the apt snippet that lets unattended-upgrades
    take duckdns from its own repository, the backup paths list (an older build's
    postinst wrote it) and the ifupdown trigger (ifupdown looks only in /etc)."""
    conffiles = (built.ctrl / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/" + APT_SNIPPET, "/" + BACKUP_LIST, "/" + IFUP_TRIGGER]
    shipped = sorted(
        str(p.relative_to(built.root)) for p in (built.root / "etc").rglob("*") if p.is_file()
    )
    assert shipped == [APT_SNIPPET, BACKUP_LIST, IFUP_TRIGGER]
    trigger = (built.root / IFUP_TRIGGER).read_text()
    assert trigger == (REPO / "debian/network/ifupdown/duckdns").read_text()
    listed = (built.root / BACKUP_LIST).read_text()
    assert listed == (REPO / "debian/backup-paths.d/duckdns.list").read_text()
    assert stat.S_IMODE((built.root / BACKUP_LIST).stat().st_mode) == 0o644
    text = (built.root / APT_SNIPPET).read_text()
    assert text == (REPO / "debian/apt.conf.d/51duckdns-unattended-upgrades").read_text()
    code = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("//")]
    assert code == ["Unattended-Upgrade::Origins-Pattern {", '"origin=duckdns";', "};"]
    # apt itself parses it: the pattern lands in the list unattended-upgrades reads.
    dump = run(["apt-config", "-c", built.root / APT_SNIPPET, "dump"]).stdout
    assert 'Unattended-Upgrade::Origins-Pattern:: "origin=duckdns";' in dump


def test_no_maintainer_script_writes_the_backup_list(built):
    for name in ("postinst", "postrm"):
        text = (built.ctrl / name).read_text()
        assert not re.search(r">\s*\S*backup-paths\.d", text), name
        assert "write_backup_list" not in text, name


def test_preinst_steps_aside_exactly_what_the_old_postinst_wrote(built, tmp_path):
    """The md5sum in preinst is that of the list the last build with the generating
    postinst (commit 333b9f9) wrote, computed here from that postinst's own function."""
    old = run(["git", "-C", REPO, "show", f"{OLD_POSTINST_COMMIT}:debian/postinst"]).stdout
    function = re.search(r"^write_backup_list\(\) \{.*?^\}$", old, re.M | re.S).group(0)
    script = (
        f"{function}\nCONF=/var/lib/private/duckdns/duckdns.conf\nBACKUP_DIR={tmp_path}/d\n"
        f"BACKUP_LIST=$BACKUP_DIR/duckdns.list\nCREATED={tmp_path}/created\nwrite_backup_list\n"
    )
    run(["sh", "-ec", script])
    md5 = run(["md5sum", tmp_path / "d/duckdns.list"]).stdout.split()[0]
    preinst = (built.ctrl / "preinst").read_text()
    assert f"OLD_MD5={md5}\n" in preinst
    assert (tmp_path / "d/duckdns.list").read_text() != (built.root / BACKUP_LIST).read_text()


def test_maintainer_scripts_present_and_strict(built):
    for name in ("config", "preinst", "postinst", "postrm", "prerm"):
        script = built.ctrl / name
        assert script.is_file(), f"no {name}"
        assert script.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/bin/sh", f"{name}: {lines[0]}"
        code = [ln.strip() for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
        assert code[0] == "set -e", f"{name}: first command is {code[0]!r}, not set -e"
        run(["dash", "-n", script])
        # debhelper's snippets go where #DEBHELPER# is, after all of our own code.
        text = script.read_text()
        assert "#DEBHELPER#" not in text, name
        source = REPO / "debian" / name
        if source.exists():
            ours = source.read_text().split("#DEBHELPER#")[0]
            assert text.startswith(ours), f"{name}: debhelper code inserted before ours"


def test_timer_enabled_and_service_not_by_dh_installsystemd(built):
    postinst = (built.ctrl / "postinst").read_text()
    # Only the timer is started or restarted: deb-systemd-invoke cannot start the static
    # service and said so ("... is a disabled or a static unit, not starting it.").
    # (And the hooks' path unit, tests/package/test_units.py.)
    invokes = re.findall(r"deb-systemd-invoke .*", postinst)
    assert invokes == [
        f"deb-systemd-invoke $_dh_action '{unit}' >/dev/null || true"
        for unit in ("duckdns.timer", "duckdns-changed.path")
    ]
    assert "deb-systemd-helper enable 'duckdns.timer'" in postinst
    assert "was-enabled 'duckdns.timer'" in postinst  # an admin's disable survives upgrades
    assert not re.search(r"deb-systemd-helper\s+enable\s+'?duckdns\.service", postinst)
    assert not re.search(r"systemctl\s+(--\S+\s+)*enable", postinst)
    prerm = (built.ctrl / "prerm").read_text()
    assert re.search(r"deb-systemd-invoke stop .*'duckdns\.timer'", prerm)
    postrm = (built.ctrl / "postrm").read_text()
    assert "deb-systemd-helper purge 'duckdns.timer'" in postrm


def test_token_is_removed_from_debconf_and_purged(built):
    postinst = (built.ctrl / "postinst").read_text()
    assert 'db_set duckdns/token ""' in postinst
    postrm = (built.ctrl / "postrm").read_text()
    assert "db_purge" in postrm


def test_token_never_reaches_a_command_line(built):
    """Between reading the token from debconf and writing the file, only builtins."""
    for name in ("config", "postinst"):
        text = (built.ctrl / name).read_text()
        # No pipe of a token variable into a program, no program given it as argument.
        assert not re.search(r"\$\{?(TOKEN|CUR_TOKEN|_in)\b[^\n|]*\|", text), name
        assert not re.search(
            r"\b(echo|sed|awk|tr|grep|cat)\b[^\n]*\$\{?(TOKEN|CUR_TOKEN)\b", text
        ), name
