"""The man pages (man/duckdns.1, man/duckdns.conf.5) against the program itself.

One source of truth for the option list: the commands and options come from
``duckdns --help`` and every subcommand's ``--help`` (parsed from their text, as a
user reads them), and the page must list exactly those. The exit codes of the help's
epilog must be the page's EXIT STATUS, and duckdns.conf(5) must list every key the
parser knows with the default the code uses. Both pages must render without a single
warning from groff and man (the checks lintian runs).

Needs groff-base and man-db (both in a standard Debian install; lintian depends on
man-db).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from support.helpers import ROOT
from support.runner import Updater

from duckdns import config

MAN1 = ROOT / "man" / "duckdns.1"
MAN5 = ROOT / "man" / "duckdns.conf.5"
PAGES = [MAN1, MAN5]
# Accepted by every command as well as before it: documented once, under OPTIONS.
COMMON = {"-h", "--help", "-v", "--verbose", "-q", "--quiet", "--config"}
OPTION_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")

# -- the help text ----------------------------------------------------------------


def help_text(*words: str) -> str:
    """``duckdns WORDS --help``, in a process: the helpers here run outside a test's fixtures."""
    proc = Updater(process=True)(*words, "--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def help_blocks(text: str) -> dict[str, list[str]]:
    """argparse's help as {"usage": [...], "options:": [...], ...}, one entry per heading."""
    blocks: dict[str, list[str]] = {}
    current = "usage"
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.strip()
            blocks[current] = []
        else:
            blocks.setdefault(current, []).append(line)
    return blocks


def help_options(text: str) -> set[str]:
    """Every option string in the help's "options:" block (``-v, --verbose`` gives both)."""
    found = set()
    for line in help_blocks(text).get("options:", []):
        m = re.match(r"^  (-\S.*?)(?:  |$)", line)
        if m:
            for item in m.group(1).split(", "):
                found.add(item.split()[0])
    return found


def help_subcommands(text: str) -> list[str]:
    """The COMMAND/ACTION choices listed under "positional arguments:"."""
    lines = help_blocks(text).get("positional arguments:", [])
    return [m.group(1) for line in lines if (m := re.match(r"^    ([a-z][a-z-]*)(?:\s|$)", line))]


def cli_commands() -> dict[str, set[str]]:
    """{"update": {"--force", "--dry-run"}, "txt set": set(), ...} from the help texts."""
    commands: dict[str, set[str]] = {}

    def walk(words: list[str]) -> None:
        text = help_text(*words)
        subs = help_subcommands(text)
        if subs:
            for sub in subs:
                walk([*words, sub])
        else:
            commands[" ".join(words)] = help_options(text) - COMMON

    for command in help_subcommands(help_text()):
        walk([command])
    return commands


# -- the roff source --------------------------------------------------------------

ESCAPES = [
    ("\\-", "-"),
    ("\\e", "\\"),
    ("\\(aq", "'"),
    ("\\(->", "->"),
    ("\\(em", "-"),
    ("\\(-", "-"),
    ("\\&", ""),
    ("\\ ", " "),
]


def plain(line: str) -> str:
    """The text a roff line shows, macros and font changes dropped."""
    if line.startswith("."):
        name, _, rest = line[1:].partition(" ")
        try:
            args = shlex.split(rest.replace("\\", "\\\\"))
        except ValueError:
            args = rest.split()
        joiner = "" if len(name) == 2 and set(name) <= set("BIR") else " "
        line = joiner.join(args)
    line = re.sub(r"\\f[BIRP]", "", line)
    for escape, text in ESCAPES:
        line = line.replace(escape, text)
    return line


def sections(page: Path) -> dict[str, list[str]]:
    """{"OPTIONS": [roff lines], ...}, comments dropped."""
    result: dict[str, list[str]] = {}
    current = ""
    for line in page.read_text().splitlines():
        if line.startswith('.\\"'):
            continue
        if line.startswith(".SH "):
            current = plain(line[4:].strip().strip('"'))
            result[current] = []
        else:
            result.setdefault(current, []).append(line)
    return result


def tags(lines: list[str]) -> list[str]:
    """The tag line of each .TP (and .TQ) entry, as text."""
    return [plain(lines[i + 1]) for i, line in enumerate(lines[:-1]) if line in (".TP", ".TQ")]


def entries(lines: list[str]) -> dict[str, str]:
    """{tag: the entry's text} for each .TP entry, whitespace normalised."""
    result: dict[str, str] = {}
    tag = None
    for i, line in enumerate(lines):
        if line in (".TP", ".TQ") and i + 1 < len(lines):
            tag = plain(lines[i + 1])
            result[tag] = ""
        elif tag is not None and i > 0 and lines[i - 1] not in (".TP", ".TQ"):
            if line.startswith((".SH", ".SS", ".PP")):
                tag = None
            else:
                result[tag] += " " + plain(line)
    return {k: " ".join(v.split()) for k, v in result.items()}


def man_commands() -> dict[str, set[str]]:
    """{command words: its options}: one .SS per command under COMMANDS.

    The heading starts with the command words ("txt set"), then shows the options and
    arguments; options are also taken from the .TP tags of the subsection.
    """
    commands: dict[str, set[str]] = {}
    current = None
    lines = sections(MAN1)["COMMANDS"]
    for i, line in enumerate(lines):
        if line.startswith(".SS "):
            heading = plain(line)
            words = []
            for word in heading.split():
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                words.append(word)
            current = " ".join(words)
            assert current not in commands, f"COMMANDS lists {current!r} twice"
            commands[current] = set(OPTION_RE.findall(heading))
        elif line in (".TP", ".TQ") and current:
            commands[current] |= set(OPTION_RE.findall(plain(lines[i + 1])))
    return commands


# -- the tests --------------------------------------------------------------------


def test_man_page_lists_exactly_the_commands_and_options_of_the_help():
    cli = cli_commands()
    man = man_commands()
    assert sorted(man) == sorted(cli), "COMMANDS in duckdns(1) and 'duckdns --help' disagree"
    for command, options in cli.items():
        assert man[command] == options, f"duckdns {command}: options differ from its --help"


def test_global_options_match_the_help():
    documented = set()
    for tag in tags(sections(MAN1)["OPTIONS"]):
        documented |= set(OPTION_RE.findall(tag))
    assert documented == help_options(help_text())
    # Every command accepts the common options (they may follow the command).
    for command in cli_commands():
        assert help_options(help_text(*command.split())) >= COMMON, command


def test_synopsis_names_the_global_options():
    synopsis = " ".join(plain(line) for line in sections(MAN1)["SYNOPSIS"])
    for option in ("-v", "-q", "--config", "--help", "--version"):
        assert option in synopsis


def help_codes(heading: str) -> list[str]:
    """The codes of one exit-status table of the main --help."""
    block = help_blocks(help_text()).get(heading, [])
    return [m.group(1) for line in block if (m := re.match(r"^  (\d+)\s", line))]


def test_exit_codes_match_the_help_and_their_one_definition():
    """ExitStatus and CheckStatus (duckdns/__init__.py) are the tables: --help prints them,
    and EXIT STATUS lists the same codes, status --check's under its own subsection with
    each state's name."""
    from duckdns import CheckStatus, ExitStatus

    assert help_codes("exit codes:") == [str(int(s)) for s in ExitStatus]
    assert {int(s) for s in ExitStatus} == {0, 1, 2, 70, 75, 78}
    check_heading = "exit codes of 'status --check' (the monitoring-plugins convention):"
    assert help_codes(check_heading) == [str(int(s)) for s in CheckStatus] == ["0", "1", "2", "3"]
    lines = sections(MAN1)["EXIT STATUS"]
    split = lines.index('.SS "status \\-\\-check"')
    assert tags(lines[:split]) == help_codes("exit codes:")
    check = entries(lines[split:])
    assert list(check) == help_codes(check_heading)
    for status in CheckStatus:
        assert check[str(int(status))].startswith(f"{status.name}:"), status


def test_duckdns_conf_lists_every_key_with_its_default():
    keys = entries(sections(MAN5)["KEYS"])
    assert list(keys) == list(config.KEYS), "KEYS in duckdns.conf(5) must follow config.KEYS"
    hours = config.DEFAULT_REFRESH // 3600
    defaults = {
        "ipv4": "auto (default)",
        "ipv6": "off (default)",
        "server": f"default: {config.DEFAULT_SERVER}.",
        "ca_bundle": "default: none",
        "probe": f"Default: {config.DEFAULT_PROBE}:",
        "refresh": f"default: {hours}h.",
        "domains": "Required; no default.",
        "token": "Required; no default.",
    }
    for key, expected in defaults.items():
        assert expected in keys[key], f"duckdns.conf(5): {key} must say {expected!r}"


def test_duckdns_conf_examples_are_valid_configurations(runner, tmp_path: Path):
    """Each example file in duckdns.conf(5) passes 'duckdns check'."""
    lines = sections(MAN5)["EXAMPLES"]
    blocks, block = [], None
    for line in lines:
        if line == ".EX":
            block = []
        elif line == ".EE":
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(plain(line))
    files = [b for b in blocks if any(line.startswith("token = ") for line in b)]
    assert len(files) >= 2
    for n, body in enumerate(files):
        path = tmp_path / f"example{n}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(body) + "\n")
        proc = runner(path)("check")
        assert proc.returncode == 0, proc.stderr


def test_curl_config_example_is_read_as_documented(runner, tmp_path: Path):
    block = sections(MAN5)["CURL CONFIG COMPATIBILITY"]
    start, end = block.index(".EX"), block.index(".EE")
    token = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"
    body = "\n".join(plain(line) for line in block[start + 1 : end]).replace("TOKEN", token)
    path = tmp_path / "duckdns.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body + "\n")
    cfg = config.load(path)
    assert (cfg.domains, cfg.token, cfg.server, cfg.legacy) == (
        ("piserver",),
        token,
        config.DEFAULT_SERVER,
        True,
    )
    assert cfg.probe == []
    proc = runner(path)("check")
    assert proc.returncode == 0 and "curl-config" in proc.stdout


def test_man_examples_are_valid_command_lines():
    """Every 'duckdns …' line in the EXAMPLES of both pages parses with the real parser."""
    from duckdns.cli import build_parser

    shown = []
    for page in PAGES:
        for line in sections(page).get("EXAMPLES", []):
            text = plain(line)
            m = re.search(r"(?:^|sudo |\$\()duckdns(?= )(.*?)(?:\)|$)", text)
            if m:
                shown.append(shlex.split(m.group(1)))
    assert len(shown) >= 6
    for argv in shown:
        build_parser().parse_args(argv)  # SystemExit (usage error) fails the test


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_renders_without_warnings(page: Path):
    groff = shutil.which("groff")
    man = shutil.which("man")
    assert groff and man, "install groff-base and man-db"
    proc = subprocess.run([groff, "-ww", "-man", "-z", str(page)], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "MANWIDTH": "80",
        "MAN_DISABLE_SECCOMP": "1",
    }
    proc = subprocess.run(
        [man, "--warnings", "-E", "UTF-8", "-l", str(page)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "NAME" in proc.stdout and page.name.split(".")[0] in proc.stdout


def test_pages_and_hooks_are_packaged():
    """dh_installman installs the pages from debian/duckdns.manpages, dh_install the hooks
    from debian/duckdns.install; both read the sdist, so MANIFEST.in must carry them."""
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    for directory in ("man", "hooks"):
        assert f"recursive-include {directory} *" in manifest or f"graft {directory}" in manifest, (
            f"MANIFEST.in needs 'recursive-include {directory} *'"
        )
    listed = (ROOT / "debian" / "duckdns.manpages").read_text().split()
    for page in PAGES:
        assert str(page.relative_to(ROOT)) in listed, f"debian/duckdns.manpages needs {page}"
    assert "debian/duckdns.1" not in listed, "man/duckdns.1 replaces debian/duckdns.1"
    install = (ROOT / "debian" / "duckdns.install").read_text()
    for hook in ("certbot-auth-hook", "certbot-cleanup-hook"):
        assert re.search(rf"^hooks/{hook}\s+usr/share/duckdns/?$", install, re.M), (
            f"debian/duckdns.install needs 'hooks/{hook} usr/share/duckdns/'"
        )
