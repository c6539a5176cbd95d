"""README.md and the users' pages it links to (docs/*.md but the design and packaging
ones) are real: every duckdns command line parses with the real parser, every make target
exists, the preseed lines name the real debconf templates, the tables match the code, and
the by-hand and backup examples run as shown (against local files only: nothing here
leaves the machine). The README stays short (at most 400 lines) and says how to get the
package before building it; each check reads the page its text lives on.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.helpers import CANARY, DEBIAN_PYTHON, ROOT, assert_no_canary, write_config

from duckdns import ExitStatus, config
from duckdns.cli import build_parser

README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The pages for users and contributors the README sends its readers to.
PAGES = [
    README,
    *(DOCS / f"{name}.md" for name in ("network", "monitoring", "backup", "fleet", "certificates")),
    *(DOCS / f"{name}.md" for name in ("security", "testing")),
]
MAX_README_LINES = 400


def blocks(lang: str | None = None, page: Path | None = None) -> list[str]:
    """The fenced code blocks of ``page`` (all PAGES if None), of one language if given."""
    found = []
    for path in [page] if page else PAGES:
        found += re.findall(r"^( *)```(\w*)\n(.*?)^\1```", path.read_text(), re.M | re.S)
    return [textwrap.dedent(body) for _, kind, body in found if lang is None or kind == lang]


def text_of(page: Path | None = None) -> str:
    return "\n".join(path.read_text() for path in ([page] if page else PAGES))


def shell_lines(page: Path | None = None) -> list[str]:
    """Every command line in the sh blocks, continuations joined, comments dropped."""
    lines = []
    for body in blocks("sh", page):
        body = body.replace("\\\n", " ")
        heredoc = None
        for line in body.splitlines():
            if heredoc:
                if line.strip() == heredoc:
                    heredoc = None
                continue
            m = re.search(r"<<'?(\w+)'?", line)
            if m:
                heredoc = m.group(1)
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def prose(page: Path | None = None) -> str:
    """The text outside the fenced blocks, each paragraph on one line (inline code may
    be wrapped)."""
    text = re.sub(r"^( *)```.*?^\1```", "", text_of(page), flags=re.M | re.S)
    return re.sub(r" *(?<!\n)\n(?!\n) *", " ", text)


def duckdns_invocations(page: Path | None = None) -> list[list[str]]:
    """The arguments of every duckdns call shown, in sh blocks and inline code."""
    text = (
        "\n".join(shell_lines(page))
        + "\n"
        + "\n".join(re.findall(r"`([^`]*duckdns [^`]*)`", prose(page)))
    )
    calls = []
    for m in re.finditer(r"(?:^|sudo |\$\(|-m )duckdns((?: [^\s|;&)`]+)*)", text, re.M):
        args = shlex.split(m.group(1).replace("~", "/home/u"))
        if args and args[0] in ("duckdns", "dpkg-reconfigure"):
            continue
        calls.append(args)
    return calls


def test_readme_is_for_users_and_short():
    """At most 400 lines; how to get the code or the package comes before `make deb`; the
    recipe it replaces, removal, and `make test` for contributors (CI runs it) are there."""
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    assert text.index("git clone") < text.index("make deb")
    assert "Architecture: all" in text.split("make deb", 1)[0]
    assert "duck.sh" in text and "crontab" in text
    assert re.search(r"^## Removing duckdns$", text, re.M)
    removing = text.split("## Removing duckdns", 1)[1].split("\n## ", 1)[0]
    for words in ("apt remove", "apt purge", "duckdns clear", "token"):
        assert words in removing, words
    assert "`make test`" in text
    notifications = text.split("## Notifications\n", 1)[1]
    assert notifications.lstrip().startswith("```sh\nsudo apt install apprise\n```")
    for gone in ("## Tests", "piuparts", "Running it by hand"):
        assert gone not in text, f"developer material belongs in docs/testing.md: {gone}"


def test_readme_links_point_at_pages_and_headings_that_exist():
    text = README.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path if path else README
        assert page.is_file(), target
        if anchor:
            slugs = {
                re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
                for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M)
            }
            assert anchor in slugs, f"{target}: no such heading"


def test_every_duckdns_command_shown_parses():
    calls = duckdns_invocations()
    commands = {next((a for a in c if not a.startswith("-") and "/" not in a), "") for c in calls}
    assert {"status", "check", "update", "verify", "backup-paths"} <= commands
    for argv in calls:
        if "FILE" in argv:
            argv = [a.replace("FILE", "/tmp/x.conf") for a in argv]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # --help exits 0; a usage error exits 2
            assert exc.code == 0, f"README shows an invalid command: duckdns {shlex.join(argv)}"


def test_every_make_target_shown_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    shown = set(re.findall(r"`make (\w[\w-]*)`", text_of()))
    shown |= {m.group(1) for line in shell_lines() if (m := re.match(r"make (\S+)", line))}
    assert {"deb", "test", "lint"} <= shown
    assert "repo" in shown
    missing = shown - targets
    assert not missing, f"README shows make targets the Makefile lacks: {missing}"


def test_preseed_lines_name_the_real_templates():
    templates = {}
    for stanza in (ROOT / "debian" / "templates").read_text().split("\n\n"):
        fields = dict(re.findall(r"^(Template|Type): (\S+)", stanza, re.M))
        if fields:
            templates[fields["Template"]] = fields["Type"]
    preseed = [
        line.split()
        for line in "\n".join(blocks("sh")).splitlines()
        if line.startswith("duckdns duckdns/")
    ]
    assert {p[1] for p in preseed} == {"duckdns/domains", "duckdns/token", "duckdns/ipv6"}
    for owner, name, kind, _value in preseed:
        assert owner == "duckdns" and templates[name] == kind, name
    token = next(v for _, n, _, v in preseed if n == "duckdns/token")
    config.check_token(token, "README")


def test_configuration_table_matches_the_code():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text_of(README), re.M))
    assert list(rows) == list(config.KEYS)
    assert rows["ipv4"].strip() == "`auto`"
    assert rows["ipv6"].strip() == "`off`"
    assert rows["server"].strip() == f"`{config.DEFAULT_SERVER}`"
    assert rows["probe"].strip() == f"`{config.DEFAULT_PROBE}`"
    assert rows["refresh"].strip() == f"`{config.DEFAULT_REFRESH // 3600}h`"


def test_exit_code_table_matches_the_help(runner):
    """The README's table is ExitStatus, the table --help prints (status --check's own
    codes are in docs/monitoring.md)."""
    table = re.findall(r"^\| (\d+) \|", README.read_text(), re.M)
    assert table == [str(int(status)) for status in ExitStatus]
    proc = runner()("--help")
    epilog = proc.stdout.split("exit codes:", 1)[1].split("\n\n", 1)[0]
    assert table == re.findall(r"^  (\d+)\s", epilog, re.M)


def test_monitoring_page_shows_the_check_states():
    from duckdns import CheckStatus

    rows = re.findall(r"^\| (\d) \| `DUCKDNS (\w+)` \|", (DOCS / "monitoring.md").read_text(), re.M)
    assert rows == [(str(int(status)), status.name) for status in CheckStatus]


def test_by_hand_example_runs(tmp_path: Path):
    """The developer block, with a real-looking token and no traffic (check, --dry-run)."""
    block = next(b for b in blocks("sh", DOCS / "testing.md") if "printf 'domains" in b)
    script = block.replace("'your-token-here'", f"'{CANARY}'").replace(
        "/usr/bin/python3", DEBIAN_PYTHON
    )
    # Only the commands that send nothing: the last line would update for real.
    script = "\n".join(line for line in script.splitlines() if not line.endswith(" update"))
    assert "update --dry-run" in script
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["sh", "-ec", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert_no_canary(proc.stdout, proc.stderr)
    assert "OK" in proc.stdout and "token=***" in proc.stdout
    assert (tmp_path / "duckdns.conf").stat().st_mode & 0o777 == 0o600


def test_tar_backup_example_copes_with_missing_paths(runner, tmp_path: Path):
    cfg = write_config(tmp_path / "duckdns.conf", domains="myhome", token=CANARY)
    paths = runner(cfg)("backup-paths").stdout.split()
    assert str(cfg) in paths
    line = next(x for x in shell_lines() if x.startswith("sudo tar -czf"))
    argv = shlex.split(line.split("$(")[0].removeprefix("sudo "))
    archive = tmp_path / argv[argv.index("-czf") + 1]
    argv[argv.index("-czf") + 1] = str(archive)
    proc = subprocess.run(argv + paths, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # absent drop-in directories only warn
    listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True)
    assert str(cfg).lstrip("/") in listing.stdout


def _backup_line(prefix: str) -> list[str]:
    """The README's backup command starting with ``prefix``, without sudo, as argv."""
    line = next(x for x in shell_lines() if x.startswith(prefix))
    return shlex.split(line.split("$(")[0].removeprefix("sudo "))


@pytest.fixture
def backed_up(runner, tmp_path: Path):
    """A config with the canary token, its backup-paths (a drop-in dir does not exist)
    and the list file, as /etc/backup-paths.d/duckdns.list would hold them."""
    cfg = write_config(tmp_path / "duckdns.conf", domains="myhome", token=CANARY)
    paths = runner(cfg)("backup-paths").stdout.split()
    listing = tmp_path / "duckdns.list"
    listing.write_text("\n".join(paths) + "\n")
    return cfg, paths, listing


def _restored(root: Path, cfg: Path) -> str:
    return (root / str(cfg).lstrip("/")).read_text()


def test_rsync_backup_example(tmp_path: Path, backed_up):
    cfg, paths, _ = backed_up
    argv = _backup_line("sudo rsync ")
    dest = tmp_path / "dest"
    proc = subprocess.run([*argv, *paths, f"{dest}/"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # --ignore-missing-args: absent paths are fine
    assert _restored(dest, cfg) == cfg.read_text()


def test_restic_backup_example_and_restore(tmp_path: Path, backed_up):
    cfg, _, listing = backed_up
    argv = _backup_line("sudo restic ")
    repo = tmp_path / "restic"
    argv[argv.index("-r") + 1] = str(repo)
    argv[argv.index("--files-from") + 1] = str(listing)
    env = {"RESTIC_PASSWORD": "test", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["restic", "-r", str(repo), "init"], env=env, check=True, capture_output=True)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    subprocess.run(
        ["restic", "-r", str(repo), "restore", "latest", "--target", str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    assert _restored(out, cfg) == cfg.read_text()


def test_borg_backup_example_and_restore(tmp_path: Path, backed_up):
    cfg, paths, _ = backed_up
    argv = _backup_line("sudo borg ")
    repo = tmp_path / "borg"
    archive = argv[2].split("::", 1)[1]
    argv[2] = f"{repo}::{archive}"
    env = {
        "BORG_PASSPHRASE": "test",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BORG_BASE_DIR": str(tmp_path / "borg-base"),
    }
    subprocess.run(
        ["borg", "init", "--encryption=repokey", str(repo)],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.run([*argv, *paths], env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr  # the README's documented warning
    assert "duckdns.service.d" in proc.stderr  # ... for the absent drop-in directory
    # borg expands {now} again in every command: ask for the name it gave the archive.
    listed = subprocess.run(
        ["borg", "list", "--short", str(repo)], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(listed) == 1 and listed[0].startswith(archive.split("{", 1)[0]), listed
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["borg", "extract", f"{repo}::{listed[0]}"],
        env=env,
        check=True,
        capture_output=True,
        cwd=out,
    )
    assert _restored(out, cfg) == cfg.read_text()


def test_certbot_hook_paths_exist():
    for path in set(re.findall(r"/usr/share/duckdns/([\w-]+)", text_of())):
        assert (ROOT / "hooks" / path).is_file(), path
    install = ROOT / "debian" / "duckdns.install"
    if install.exists():
        text = install.read_text()
        for path in ("certbot-auth-hook", "certbot-cleanup-hook"):
            assert re.search(rf"^hooks/{path}\s+usr/share/duckdns/?$", text, re.M), path


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd")
def test_alert_mail_unit_verifies(tmp_path: Path):
    """The mail recipe: its script, its unit and the drop-in that runs it."""
    script_text = next(b for b in blocks("sh") if "duckdns status --alert" in b)
    script = tmp_path / "duckdns-alert-mail"
    script.write_text(script_text)
    script.chmod(0o755)
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    unit_text = next(b for b in blocks("ini") if "ExecStart=" in b)
    assert "ExecStart=/usr/local/sbin/duckdns-alert-mail" in unit_text
    unit = tmp_path / "duckdns-alert-mail.service"
    unit.write_text(unit_text.replace("/usr/local/sbin/duckdns-alert-mail", str(script)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert str(unit) not in proc.stderr, proc.stderr
    dropin = next(b for b in blocks("ini") if "OnFailure=" in b)
    assert dropin.strip() == (
        "[Unit]\nOnFailure=duckdns-alert-mail.service\nOnSuccess=duckdns-alert-mail.service"
    )


def test_sources_example_is_deb822_with_signed_by():
    from debian.deb822 import Deb822

    text = next(b for b in blocks() if b.startswith("Types: deb"))
    entry = Deb822(text.splitlines())
    assert entry["Suites"] in ("bookworm", "trixie")
    assert entry["Signed-By"].startswith("/etc/apt/keyrings/")
    assert entry["Signed-By"].endswith("duckdns-archive-keyring.gpg")
