"""duckdns.org's own install-page recipe, still running from cron: found, read, reported.

The recipe duckdns.org's install page gives for Linux (and that hassbian-scripts,
nextcloudpi, IOTstack and many how-tos copy) is a script ``~/duckdns/duck.sh``::

    echo url="https://www.duckdns.org/update?domains=NAMES&token=TOKEN&ip=" |
        curl -k -o ~/duckdns/duck.log -K -

(one line in the script)
run from the user's crontab by ``*/5 * * * * ~/duckdns/duck.sh >/dev/null 2>&1``. Some
copies call curl or wget on the URL directly, in the script or on the crontab line itself.

:func:`find` reads the crontabs cron reads (users' in /var/spool/cron/crontabs, /etc/crontab,
/etc/cron.d) for a job that runs a ``duck.sh`` under /root or /home/USER, or that holds a
DuckDNS update URL, and reads the names and token of the URL it finds. What it reads is
bounded (sizes, counts of files) and it reads a user's file only as that user could have
written it: no symbolic link below the home directory, owned by the home's owner (so a hard
link to one of root's files is not read), a regular file.

It never changes a crontab or a user's file: :func:`advice` says what to remove.
Used by debian/config (``python3 -I -m duckdns.recipe``: the recipe's answers), by
debian/postinst (``--advice``) and by ``duckdns check`` (:func:`warn_running`).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass
from urllib.parse import parse_qs

from duckdns import EXIT_OK, EXIT_USAGE, config, report

SPOOL = "/var/spool/cron/crontabs"  # Debian's cron (and cronie's /var/spool/cron is not Debian's)
SYSTEM_CRONTABS = ("/etc/crontab",)
CRON_D = "/etc/cron.d"
SCRIPT_NAME = "duck.sh"
HOMES = ("/root", "/home")  # root's home, and the directory of the users' homes
MAX_CRONTABS = 64  # files read in the spool and in /etc/cron.d, each
MAX_CRONTAB_SIZE = 64 * 1024  # a crontab is a few lines; more is read only this far
MAX_SCRIPT_SIZE = 16 * 1024  # duck.sh is one line
MAX_JOBS = 16
# Names of /etc/cron.d files cron skips (cron(8): only letters, digits, '_' and '-').
CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PERIODS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly")


@dataclass
class Job:
    """One cron job that updates DuckDNS the recipe's way."""

    crontab: str  # the file cron reads it from
    number: int  # its line number there
    line: str  # the line as written (it may hold the token: printed only through report)
    user: str  # who cron runs it as
    script: str  # the duck.sh it runs ("" when the URL is on the crontab line itself)
    domains: tuple[str, ...] = ()  # () when the URL could not be read (variables, no file)
    token: str = ""

    def removal(self) -> str:
        """How to take this job away: the crontab command or the file, and the line."""
        if self.crontab.startswith(SPOOL + "/"):
            how = f"run 'crontab -u {self.user} -e' and delete line {self.number}"
        else:
            how = f"edit {self.crontab} and delete line {self.number}"
        text = f"{how}: {report.safe(self.line.strip())}"
        if self.script:
            log = os.path.join(os.path.dirname(self.script), "duck.log")
            text += f"; then delete {self.script} (and its log {log})"
        return text


def find() -> list[Job]:
    """Every cron job that runs the recipe, first ones first, at most MAX_JOBS."""
    jobs: list[Job] = []
    for path, user in _crontabs():
        # cron reads a user's crontab only if that user owns it, system ones if root does
        owner = _uid(user) if user else 0
        text = _read(path, MAX_CRONTAB_SIZE, owner=owner) if owner is not None else None
        if text is None:
            continue
        for number, raw in enumerate(text.split("\n"), 1):
            job = _job(path, number, raw, user)
            if job is not None:
                jobs.append(job)
                if len(jobs) >= MAX_JOBS:
                    return jobs
    return jobs


def _crontabs() -> list[tuple[str, str | None]]:
    """The crontabs cron reads and whose jobs they hold: (path, user) for a user's crontab,
    (path, None) for the system ones (each line names its user)."""
    found: list[tuple[str, str | None]] = [(path, None) for path in SYSTEM_CRONTABS]
    for directory, user_tabs in ((SPOOL, True), (CRON_D, False)):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        if not user_tabs:
            names = [name for name in names if CRON_D_NAME.fullmatch(name)]
        for name in names[:MAX_CRONTABS]:
            found.append((os.path.join(directory, name), name if user_tabs else None))
    return found


def _job(path: str, number: int, raw: str, user: str | None) -> Job | None:
    """The recipe's job on this crontab line, if it is one."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith("@"):
        fields, want = line.split(None, 1), 1
        if fields[0] not in _PERIODS:
            return None
    else:
        fields, want = line.split(None, 5), 5
    if len(fields) <= want:
        return None  # an environment line (NAME=value), or one cron would refuse
    command = fields[want]
    if user is None:  # /etc/crontab and /etc/cron.d: the user comes first
        parts = command.split(None, 1)
        if len(parts) < 2:
            return None
        user, command = parts
    url = config.UPDATE_URL.search(command)
    if url is not None:
        domains, token = _read_url(url[1])
        return Job(path, number, raw, user, "", domains, token)
    home = _home(user)
    for word in re.split(r"[\s;&|()<>]+", command):
        word = word.strip("\"'")
        script = _script_path(word, home) if os.path.basename(word) == SCRIPT_NAME else None
        if script is not None:
            domains, token = _read_script(script, user)
            return Job(path, number, raw, user, script, domains, token)
    return None


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except (KeyError, UnicodeError):
        return None


def _home(user: str) -> str:
    try:
        return pwd.getpwnam(user).pw_dir
    except (KeyError, UnicodeError):
        return ""


def _script_path(word: str, home: str) -> str | None:
    """The absolute path cron's shell runs for ``word`` (cron starts in the user's home),
    if it lies under /root or a /home/USER directory."""
    for prefix in ("~/", "$HOME/", "${HOME}/"):
        if word.startswith(prefix):
            word = os.path.join(home, word[len(prefix) :]) if home else ""
    if not word:
        return None
    if not word.startswith("/"):
        if not home:
            return None
        word = os.path.join(home, word)
    path = os.path.normpath(word)
    root, homes = HOMES
    below_a_home = path.startswith(homes + "/") and path.count("/") > homes.count("/") + 1
    return path if path.startswith(root + "/") or below_a_home else None


def _read_script(path: str, user: str) -> tuple[tuple[str, ...], str]:
    """The names and token of the update URL in the script ``path`` that cron runs as
    ``user``, or ((), ""). A job of a user other than root is read only from that user's
    own home: a crontab line cannot make root's file (or another user's) the answers."""
    root, homes = HOMES
    user_home = "/".join(path.split("/")[: homes.count("/") + 2])  # /home/USER
    home = root if path.startswith(root + "/") else user_home
    try:
        owner = os.stat(home).st_uid  # /root and /home/USER: root made them
    except OSError:
        return (), ""
    if _uid(user) not in (0, owner):
        return (), ""
    text = _read(path, MAX_SCRIPT_SIZE, owner=owner, below=home)
    for match in config.UPDATE_URL.finditer(text or ""):
        domains, token = _read_url(match[1])
        if token:
            return domains, token
    return (), ""


def _read_url(query: str) -> tuple[tuple[str, ...], str]:
    """The names and token of an update URL's query; ((), "") for a URL built from shell
    variables or holding anything the updater would refuse. The token is registered as a
    secret first, whatever else happens."""
    values = parse_qs(query, keep_blank_values=True)
    tokens = values.get("token", [])
    for token in tokens:
        report.register_secret(token)
        report.register_secret(token.lower())
    names = values.get("domains", [])
    if len(tokens) != 1 or len(names) != 1:
        return (), ""
    try:
        token = config.check_token(tokens[0], "the recipe")
        domains = config.parse_domains(names[0], "the recipe")
    except config.ConfigError:
        return (), ""
    return domains, token


def _read(path: str, limit: int, owner: int, below: str | None = None) -> str | None:
    """The first ``limit`` bytes of the regular file ``path`` owned by uid ``owner`` as text,
    or None. ``below``: a directory under which no component may be a symbolic link (each is
    opened with O_NOFOLLOW from there)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fds: list[int] = []
    try:
        if below is None:
            fd = os.open(path, flags)
        else:
            fds.append(os.open(below, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            rest = os.path.relpath(path, below).split("/")
            for part in rest[:-1]:
                fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
            fd = os.open(rest[-1], flags, dir_fd=fds[-1])
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != owner:
            return None
        data = os.read(fd, limit)
    except (OSError, ValueError):
        return None
    finally:
        for fd in fds:
            os.close(fd)
    return data.decode("utf-8", "replace")


def usable(jobs: list[Job]) -> Job | None:
    """The job whose names and token become the debconf answers: the first readable one,
    if every readable job agrees with it (else none: which account is meant is not known)."""
    readable = [job for job in jobs if job.token]
    if len({(job.domains, job.token) for job in readable}) != 1:
        return None
    return readable[0]


def advice(jobs: list[Job]) -> str:
    """What to remove once duckdns runs, one job a line."""
    lines = [
        "duckdns.org's recipe still updates DuckDNS from cron; once 'duckdns status' "
        "shows a good update, stop it (duckdns changes no crontab and no user's file):"
    ]
    lines += [f"  {job.removal()}" for job in jobs]
    return "\n".join(lines)


def warn_running(domains: tuple[str, ...]) -> None:
    """``duckdns check``: a warning while a recipe job updates any of ``domains`` (or
    names that cannot be read: it may)."""
    jobs = [job for job in find() if not job.domains or set(job.domains) & set(domains)]
    if jobs:
        report.warning(
            advice(jobs).replace(
                "still updates DuckDNS from cron",
                "still updates DuckDNS from cron, the same names as this updater",
            )
        )


def main(argv: list[str]) -> int:
    """No argument: the debconf answers (``domains = …`` and ``token = …`` lines) of the
    recipe, nothing if none; ``--advice``: what to remove, on stderr."""
    if argv not in ([], ["--advice"]):
        print("usage: python3 -m duckdns.recipe [--advice]", file=sys.stderr)
        return EXIT_USAGE
    jobs = find()
    if argv:
        if jobs:
            report.warning(advice(jobs))
        return EXIT_OK
    job = usable(jobs)
    if job is not None:
        # The token goes to stdout, which debian/config reads (never argv, environment or
        # a file): the only output of ours that holds it, so not through report.out.
        sys.stdout.write(f"domains = {','.join(job.domains)}\ntoken = {job.token}\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
