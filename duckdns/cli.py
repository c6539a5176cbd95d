"""The ``duckdns`` command: read config -> decide -> talk to DuckDNS -> record state -> report.

Modules that cost CPU to import (requests above all, through duckdns.api) are
imported inside the commands that need them: a timer run where nothing changed
never loads them (see scripts/bench). Paths are strings (see duckdns.fsutil): pathlib
alone would cost a timer run about 8 ms.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from duckdns import __version__, report
from duckdns import config as configuration
from duckdns import state as statefile
from duckdns.fsutil import join, normpath, parent

EXIT_OK, EXIT_KO, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_CONFIG, EXIT_SOFTWARE = 0, 1, 2, 75, 78, 70

EPILOG = """\
exit codes:
  0   success (also: nothing to do)
  1   DuckDNS answered KO: wrong token or domain (never retried)
  2   usage error
  75  temporary failure after retries: network, DNS, TLS or clock, timeout,
      HTTP status other than 200, redirect, unexpected or oversized answer
  78  configuration error (the message names the file and the fix)

The token is read only from the configuration file (mode 0600), never from the
command line or the environment. See duckdns(1) and duckdns.conf(5).
"""

BACKUP_UNIT_PATHS = (
    "/etc/systemd/system/timers.target.wants/duckdns.timer",
    "/etc/systemd/system/duckdns.service.d",
    "/etc/systemd/system/duckdns.timer.d",
)


# The options every command takes, before or after it: (short, long, help).
COUNT_OPTIONS = (
    ("-v", "--verbose", "say more (twice: debug)"),
    ("-q", "--quiet", "say less (once: no change notices; twice: errors only)"),
)
CONFIG_OPTION = "--config"

# Commands whose only options are on/off flags: name -> (help, ((flag, help), ...)).
# build_parser() builds their parsers from this table, and the fast path the timer takes
# (_quick_parse) reads the same table, so the two cannot disagree.
SIMPLE_COMMANDS = {
    "update": (
        "update the A/AAAA records if the address changed",
        (
            ("--force", "send an update even if nothing changed"),
            ("--dry-run", "print the request that would be sent (token shown as ***) and stop"),
        ),
    ),
    "check": ("validate the configuration, without any network traffic", ()),
    "status": ("show what the last runs did", (("--json", "machine-readable output"),)),
    "clear": ("clear the A and AAAA records", ()),
    "backup-paths": ("print the files a backup must hold to restore this setup", ()),
}


def _help_width() -> int:
    """What argparse's HelpFormatter computes, without its ``import shutil``.

    HelpFormatter imports shutil (and with it bz2, lzma and fnmatch, about 1.5 ms) for
    shutil.get_terminal_size() each time it is created, which add_argument does: this is
    the same computation (COLUMNS, else the terminal, else 80), minus argparse's 2.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


def build_parser():  # -> argparse.ArgumentParser (imported only when built)
    import argparse

    def formatter(cls):
        return lambda prog: cls(prog, width=_help_width())

    plain = formatter(argparse.HelpFormatter)
    common = argparse.ArgumentParser(add_help=False, formatter_class=plain)
    # SUPPRESS: a subcommand's parser must not reset what was given before the command
    # (argparse copies the subparser's defaults over the main parser's values).
    for short, long, help_text in COUNT_OPTIONS:
        common.add_argument(short, long, action="count", default=argparse.SUPPRESS, help=help_text)
    common.add_argument(
        CONFIG_OPTION,
        metavar="PATH",
        type=normpath,
        default=argparse.SUPPRESS,
        help="configuration file (default: $STATE_DIRECTORY/duckdns.conf, "
        f"else {configuration.DEFAULT_PATH})",
    )
    parser = argparse.ArgumentParser(
        prog="duckdns",
        parents=[common],
        epilog=EPILOG,
        formatter_class=formatter(argparse.RawDescriptionHelpFormatter),
        description="Keep DuckDNS names pointed at this host's address.",
    )
    parser.add_argument("--version", action="version", version=f"duckdns {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str):
        return sub.add_parser(
            name, parents=[common], help=help_text, description=help_text, formatter_class=plain
        )

    def add_simple(name: str):
        help_text, flags = SIMPLE_COMMANDS[name]
        p = add(name, help_text)
        for flag, flag_help in flags:
            p.add_argument(flag, action="store_true", help=flag_help)
        return p

    add_simple("update")
    add_simple("check")
    add_simple("status")
    p = add("txt", "set or clear the TXT record (ACME DNS-01)")
    txt = p.add_subparsers(dest="txt_command", metavar="ACTION", required=True)
    txt_set = txt.add_parser(
        "set", parents=[common], help="set the TXT record to VALUE", formatter_class=plain
    )
    txt_set.add_argument("value", metavar="VALUE")
    txt.add_parser("clear", parents=[common], help="clear the TXT record", formatter_class=plain)
    add_simple("clear")
    p = add("verify", "check that the names resolve to the address DuckDNS recorded")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="extra names (e.g. a CNAME such as piserver.example.com)",
    )
    p.add_argument(
        "--resolver",
        metavar="ADDR[:PORT]",
        help="DNS server to ask (default: the first nameserver in /etc/resolv.conf)",
    )
    add_simple("backup-paths")
    return parser


HELP_OPTIONS = (["--help"], ["-h"])


def _stored_help() -> str | None:
    """``duckdns --help`` as the parser prints it at 80 columns, without building it.

    argparse (with re, gettext and locale) and building the parser cost more than the rest
    of the program: duckdns/helptext.py holds the text build_parser() prints at the usual
    width, generated from it by :func:`write_helptext`; tests/unit/test_cost.py fails when
    the two differ. Any other width (COLUMNS, a wider terminal) goes to argparse, and so
    does any other Python than the one it was generated on: argparse's layout changes
    between versions (3.13, Debian 13, puts the help column one further right and fits
    ``backup-paths`` on its line), and --help must print what argparse prints.
    (argparse's own words, "usage:" and "options:", would follow a gettext catalog for the
    default "messages" domain; Debian installs none, so they are English, as stored.)
    """
    from duckdns import helptext

    if sys.version_info[:2] != helptext.PYTHON or _help_width() != helptext.WIDTH:
        return None
    return helptext.MAIN


def write_helptext(path: str | None = None) -> None:
    """Regenerate duckdns/helptext.py from build_parser() (see :func:`_stored_help`)."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        width, text = _help_width(), build_parser().format_help()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    if "\\" in text or '"""' in text:
        raise ValueError("the help text cannot be stored as a plain triple-quoted string")
    with open(path or os.path.join(os.path.dirname(__file__), "helptext.py"), "w") as f:
        f.write(
            '"""``duckdns --help`` at 80 columns, from cli.write_helptext(): do not edit."""\n\n'
            f"PYTHON = {tuple(sys.version_info[:2])}\n"
            f'WIDTH = {width}\nMAIN = """\\\n{text}"""\n'
        )


class _Args:
    """What parse_args would return, for the command lines _quick_parse understands."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def _quick_parse(argv: list[str]) -> _Args | None:
    """Parse the plain command lines (the timer's ``update``) without building argparse.

    Only exact option names from COUNT_OPTIONS, CONFIG_OPTION and SIMPLE_COMMANDS are
    understood; anything else (help, abbreviations, ``--``, a missing or dash-led value,
    txt, verify, errors) returns None, and argparse parses the line instead. Importing
    and building argparse costs about a third of such a run's CPU (see scripts/bench).
    """
    counts = {}
    for short, long, _ in COUNT_OPTIONS:
        counts[short] = counts[long] = long[2:]
    letters = {short[1] for short, _, _ in COUNT_OPTIONS}
    values: dict = {}
    command = None
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == CONFIG_OPTION or arg.startswith(CONFIG_OPTION + "="):
            if arg == CONFIG_OPTION:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            else:
                value = arg[len(CONFIG_OPTION) + 1 :]
            if not value or value.startswith("-"):
                return None
            values["config"] = value
        elif arg in counts:
            values[counts[arg]] = values.get(counts[arg], 0) + 1
        elif len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= letters:
            for letter in arg[1:]:
                dest = counts["-" + letter]
                values[dest] = values.get(dest, 0) + 1
        elif command is None and arg in SIMPLE_COMMANDS:
            command = arg
            flags = {flag: flag[2:].replace("-", "_") for flag, _ in SIMPLE_COMMANDS[arg][1]}
            values.update(dict.fromkeys(flags.values(), False))
        elif command is not None and arg in flags:
            values[flags[arg]] = True
        else:
            return None
    if command is None:
        return None
    if "config" in values:
        values["config"] = normpath(values["config"])
    return _Args(command=command, **values)


def _verbosity(argv: list[str]) -> int:
    """-v/-q may stand anywhere (before or after the command): count them all."""
    level = 0
    for arg in argv:
        if arg == "--":
            break
        if arg == "--verbose":
            level += 1
        elif arg == "--quiet":
            level -= 1
        elif len(arg) > 1 and arg[0] == "-" and set(arg[1:]) <= {"v", "q"}:
            level += arg.count("v") - arg.count("q")
    return level


def config_path(args: _Args) -> str:
    return getattr(args, "config", None) or configuration.default_path()


# -- commands ----------------------------------------------------------------------


def cmd_check(args: _Args) -> int:
    cfg = configuration.load(config_path(args))
    report.out(
        f"{cfg.path}: OK (domains {', '.join(cfg.domains)}; ipv4 {cfg.ipv4}; ipv6 {cfg.ipv6}; "
        f"server {cfg.server}{'; recipe curl-config form' if cfg.legacy else ''})"
    )
    return EXIT_OK


def _probe(targets):
    from duckdns import probe

    return probe.public_ipv4(targets)


def cmd_update(args: _Args) -> int:
    from duckdns import decide

    cfg = configuration.load(config_path(args))
    state_path = statefile.path_for(cfg.path)
    state = statefile.load(state_path)
    plan = decide.plan_update(
        cfg, state, force=args.force or args.dry_run, probe_ipv4=None if args.dry_run else _probe
    )
    if args.dry_run:
        from duckdns import api

        query = api.build_query(cfg, ipv4=plan.ipv4_param, ipv6=plan.ipv6_param)
        report.out(api.describe(cfg, query))
        return EXIT_OK
    if not plan.reason:
        report.debug(f"nothing changed (IPv4 {state.get('ipv4') or '-'}): no request sent")
        return EXIT_OK
    report.info(f"updating {', '.join(cfg.domains)}: {plan.reason}")
    return _send(cfg, state, state_path, plan)


def _send(cfg, state: dict, state_path: str, plan) -> int:
    from duckdns import api

    query = api.build_query(cfg, ipv4=plan.ipv4_param, ipv6=plan.ipv6_param)
    now = int(time.time())  # whole seconds: the state file keeps one size
    state["last_run"] = now
    try:
        reply = api.send(cfg, query)
    except api.Rejected as exc:
        return _failed(state, state_path, "ko", str(exc), EXIT_KO)
    except api.TemporaryFailure as exc:
        return _failed(state, state_path, "error", str(exc), EXIT_TEMPFAIL)
    before = (state.get("ipv4", ""), state.get("ipv6", ""))
    state.update(
        last_result="updated" if reply.updated else "nochange",
        last_success=now,
        last_error="",
        sent_ipv6=plan.ipv6_param or "",
        fingerprint=cfg.fingerprint(),
    )
    if reply.ipv4 or reply.ipv6 or reply.updated:
        state.update(ipv4=reply.ipv4, ipv6=reply.ipv6)
    if reply.updated:
        state["last_change"] = now
    _check_probe(cfg, state, plan, reply)
    statefile.save(state_path, state)
    after = (state["ipv4"], state["ipv6"])
    if reply.updated or after != before:
        report.notice(
            f"{', '.join(cfg.domains)}: IPv4 {after[0] or '-'}, IPv6 {after[1] or '-'}"
            f" (was {before[0] or '-'}, {before[1] or '-'})"
        )
    return EXIT_OK


def _check_probe(cfg, state: dict, plan, reply) -> None:
    """The probe must agree with what DuckDNS saw, or it is not trusted until it does."""
    if cfg.ipv4 != "auto" or not cfg.probe or not reply.ipv4 or plan.observed_ipv4 is None:
        return
    trusted = plan.observed_ipv4 == reply.ipv4
    if state.get("probe_trusted", True) and not trusted:
        report.warning(
            f"address probe answered {plan.observed_ipv4} but DuckDNS saw {reply.ipv4} "
            "(a resolver that rewrites DNS answers?): updating every run until they agree; "
            "set 'probe = off' to silence this"
        )
    elif trusted and not state.get("probe_trusted", True):
        report.notice("address probe agrees with DuckDNS again: updates only on change")
    state["probe_trusted"] = trusted
    state["probe_ipv4"] = plan.observed_ipv4


def _failed(state: dict, state_path: str, result: str, message: str, code: int) -> int:
    state.update(last_result=result, last_error=report.redact(message))
    statefile.save(state_path, state)
    report.error(message)
    return code


def _simple_request(args: _Args, what: str, **query) -> int:
    from duckdns import api

    cfg = configuration.load(config_path(args))
    state_path = statefile.path_for(cfg.path)
    state = statefile.load(state_path)
    txt = "txt" in query
    try:
        reply = api.send(cfg, api.build_query(cfg, ipv4=None, ipv6=None, **query), txt=txt)
    except api.Rejected as exc:
        report.error(str(exc))
        return EXIT_KO
    except api.TemporaryFailure as exc:
        report.error(str(exc))
        return EXIT_TEMPFAIL
    if txt:
        state["txt"] = reply.txt
    else:
        state.update(ipv4=reply.ipv4, ipv6=reply.ipv6, last_success=None, last_result="cleared")
    statefile.save(state_path, state)
    report.notice(f"{', '.join(cfg.domains)}: {what}")
    return EXIT_OK


def cmd_txt(args: _Args) -> int:
    if args.txt_command == "set":
        return _simple_request(args, f"TXT record set to {args.value!r}", txt=args.value)
    return _simple_request(args, "TXT record cleared", txt="", clear=True)


def cmd_clear(args: _Args) -> int:
    return _simple_request(args, "A and AAAA records cleared", clear=True)


def _when(timestamp) -> str:
    if not timestamp:
        return "never"
    ago = max(0, int(time.time() - timestamp))
    text = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if ago >= size:
            return f"{text} ({ago // size} {unit} ago)"
    return f"{text} ({ago} s ago)"


def cmd_status(args: _Args) -> int:
    path = config_path(args)
    state_path = statefile.path_for(path)
    directory = parent(path)
    if not os.access(directory, os.X_OK) and _exists(directory):
        raise configuration.ConfigError(f"{directory} is not readable: run as root")
    state = statefile.load(state_path)
    if args.json:
        import json

        report.out(
            json.dumps(
                {"config": str(path), "state_file": str(state_path), **state},
                indent=2,
                sort_keys=True,
            )
        )
        return EXIT_OK
    rows = [
        ("Config", str(path) + ("" if _exists(path) else " (missing)")),
        ("Last request", _when(state["last_run"])),
        ("Last result", state["last_result"] or "-"),
        ("Last success", _when(state["last_success"])),
        ("Last change", _when(state["last_change"])),
        ("IPv4 at DuckDNS", state["ipv4"] or "-"),
        ("IPv6 at DuckDNS", state["ipv6"] or "-"),
        ("TXT", state["txt"] or "-"),
        ("Address probe", "trusted" if state["probe_trusted"] else "not trusted"),
        ("Last error", state["last_error"] or "-"),
    ]
    report.out("\n".join(f"{key + ':':17}{value}" for key, value in rows))
    return EXIT_OK


def cmd_verify(args: _Args) -> int:
    from duckdns import verify

    return verify.run(args, config_path(args))


def _exists(path: str) -> bool:
    """``pathlib.Path(path).exists()``: False if missing, an error if it cannot be known."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            raise
        return False
    except ValueError:  # a path that cannot be encoded
        return False
    return True


def backup_paths(path: str) -> list[str]:
    """What a restore needs: the config (with the token) and the admin's unit choices."""
    path = normpath(path)
    real = join(normpath(os.path.realpath(parent(path))), path.rpartition("/")[2])
    return [real, *BACKUP_UNIT_PATHS]


def cmd_backup_paths(args: _Args) -> int:
    report.out("\n".join(backup_paths(config_path(args))))
    return EXIT_OK


COMMANDS = {
    "update": cmd_update,
    "check": cmd_check,
    "status": cmd_status,
    "txt": cmd_txt,
    "clear": cmd_clear,
    "verify": cmd_verify,
    "backup-paths": cmd_backup_paths,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    report.set_verbosity(_verbosity(argv))
    if argv in HELP_OPTIONS:
        text = _stored_help()
        if text is not None:
            sys.stdout.write(text)
            return EXIT_OK
    args = _quick_parse(argv) or build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except configuration.ConfigError as exc:
        report.error(str(exc))
        return EXIT_CONFIG
    except PermissionError as exc:  # e.g. status as a user: /var/lib/private is root's
        report.error(
            f"{exc.filename or 'a file'} cannot be read: run as root (e.g. 'sudo duckdns …')"
        )
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: redacted, never a raw traceback
        from duckdns.decide import NoAddress

        if isinstance(exc, NoAddress):
            report.error(str(exc))
            return EXIT_TEMPFAIL
        import traceback

        report.debug(traceback.format_exc())
        report.error(f"internal error: {type(exc).__name__}: {exc} (run with -vv for details)")
        return EXIT_SOFTWARE
