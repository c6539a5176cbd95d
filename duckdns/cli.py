"""The ``duckdns`` command line: parse it and run the command.

``requests`` (through duckdns.api) costs more to import than the rest of the program, so
it is imported only by the commands that send a request; a timer run where nothing
changed never loads it (see scripts/bench).
"""

from __future__ import annotations

import os
import sys
import types

from duckdns import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    CheckStatus,
    ExitStatus,
    __version__,
    config,
    report,
)

# For the annotations only: the timer's `duckdns update` must not import argparse, and
# typing (for typing.TYPE_CHECKING) would cost it about a tenth of its CPU.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

    Namespace = argparse.Namespace
else:
    # What parse_args makes without argparse (the timer's and the maintainer scripts'
    # command lines), read by the commands as argparse's own: both are attributes set
    # from keyword arguments, and the commands only read attributes (getattr, vars).
    Namespace = types.SimpleNamespace


def epilog() -> str:
    """The end of --help: the exit statuses from their one definition, and the token's source."""
    import textwrap

    def rows(statuses: Iterable[ExitStatus | CheckStatus]) -> str:
        return "\n".join(
            textwrap.fill(
                status.meaning,
                width=79,
                initial_indent=f"  {status.value:<4}",
                subsequent_indent=" " * 6,
            )
            for status in statuses
        )

    return (
        f"exit codes:\n{rows(ExitStatus)}\n\n"
        f"exit codes of 'status --check' (the monitoring-plugins convention):\n"
        f"{rows(CheckStatus)}\n\n"
        "The token is read only from the configuration file (mode 0600), never from the\n"
        "command line or the environment. See duckdns(1) and duckdns.conf(5).\n"
    )


BACKUP_UNIT_PATHS = (
    "/etc/systemd/system/timers.target.wants/duckdns.timer",
    "/etc/systemd/system/duckdns.service.d",
    "/etc/systemd/system/duckdns.timer.d",
)

# The Debian packages only suggested (stdeb.cfg), by the module a command imports from them;
# updates need neither.
SUGGESTED = {"dns": "python3-dnspython", "apprise": "apprise"}

# What the timer runs (debian/duckdns.service: ExecStart=/usr/bin/duckdns update), parsed
# without argparse: importing and building it would be a third of such a run's CPU.
TIMER_ARGV = ["update"]
# The maintainer scripts' own commands (not in --help: not for people), `duckdns --config
# FILE COMMAND`: debian/config's debconf-read prints the file's answers (never the token)
# as dpkg-reconfigure's defaults; postinst's debconf-write reads the answers from stdin
# and rewrites the keys they set; debian/config's debconf-check sends one update with them.
DEBCONF_READ, DEBCONF_WRITE, DEBCONF_CHECK = "debconf-read", "debconf-write", "debconf-check"


def build_parser() -> argparse.ArgumentParser:
    import argparse

    def common(level: int) -> argparse.ArgumentParser:
        """-v, -q and --config, which may stand before or after each command word.

        -v and -q count into one dest per level (argparse copies a subcommand's values over
        the main parser's, so a shared dest would lose what came before the command);
        :func:`_run` adds them up. SUPPRESS keeps a --config given before the command.
        """
        p = argparse.ArgumentParser(add_help=False)
        for short, option, name, help_text in (
            ("-v", "--verbose", "verbose", "say more (twice: debug)"),
            ("-q", "--quiet", "quiet", "say less (once: no change notices; twice: errors only)"),
        ):
            p.add_argument(
                short, option, action="count", default=0, dest=f"{name}{level}", help=help_text
            )
        p.add_argument(
            "--config",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help="configuration file (default: $STATE_DIRECTORY/duckdns.conf, "
            f"else {config.DEFAULT_PATH})",
        )
        return p

    parser = argparse.ArgumentParser(
        prog="duckdns",
        parents=[common(0)],
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep DuckDNS names pointed at this host's address.",
    )
    parser.add_argument("--version", action="version", version=f"duckdns {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, *flags: tuple[str, str]) -> argparse.ArgumentParser:
        """A command and its on/off options, each given as (option, help)."""
        p = sub.add_parser(name, parents=[common(1)], help=help_text, description=help_text)
        for flag, flag_help in flags:
            p.add_argument(flag, action="store_true", help=flag_help)
        return p

    add(
        "update",
        "update the A/AAAA records if the address changed",
        ("--force", "send an update even if nothing changed"),
        ("--dry-run", "print the requests that would be sent (token shown as ***) and stop"),
    )
    add("check", "validate the configuration; ask the router whether the Internet can reach us")
    add(
        "status",
        "show what the last runs did",
        ("--json", "machine-readable output"),
        ("--prometheus", "Prometheus text exposition (for node-exporter's textfile collector)"),
        ("--alert", "the last alert (down, reminder, up) in one line, for a mail recipe"),
        ("--check", "one line and exit status 0-3 for Nagios, Icinga or Checkmk (see below)"),
    )
    from duckdns import acme

    p = add("txt", "set, clear or wait for the TXT record (ACME DNS-01)")
    txt = p.add_subparsers(dest="txt_command", metavar="ACTION", required=True)
    for action, help_text in (
        ("set", "set the TXT record to VALUE"),
        ("clear", "clear the TXT record"),
        ("wait", "wait until DuckDNS's name servers serve VALUE as the TXT record"),
    ):
        p = txt.add_parser(action, parents=[common(2)], help=help_text)
        if action != "clear":
            p.add_argument("value", metavar="VALUE", type=acme.txt_value)
        acme.add_arguments(p, wait=action == "wait")
    add(
        "clear",
        "clear the A and AAAA records (asks first on a terminal)",
        ("--yes", "clear without asking (needed when there is no terminal to ask on)"),
    )
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
    add("backup-paths", "print the files a backup must hold to restore this setup")
    add("notify", "the notifications through Apprise (notify = URL in the config)").add_argument(
        "--test",
        action="store_true",
        required=True,
        help="send a test message to every notify URL and say whether each took it",
    )
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argparse's namespace; the timer's own command line without importing argparse."""
    if argv == TIMER_ARGV:
        return Namespace(command="update", force=False, dry_run=False)
    if argv[-1:] in ([DEBCONF_READ], [DEBCONF_WRITE], [DEBCONF_CHECK]) and len(argv) in (1, 3):
        path = argv[1] if len(argv) == 3 and argv[0] == "--config" else None
        if len(argv) == 1 or path:
            return Namespace(command=argv[-1], config=path)
    return build_parser().parse_args(argv)


# -- commands ----------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, path: str) -> int:
    """Everything a run will use, checked as the run uses it, without any traffic to
    DuckDNS; then the reachability verdict from the router's answers (not an error)."""
    cfg = config.load(path)
    if cfg.ca_bundle:  # loaded as each request loads it: a file refused here fails there
        config.tls_context(cfg.ca_bundle, f"{cfg.path}: ca_bundle")
    if len(cfg.domains) > config.ACCOUNT_DOMAINS:
        # Not refused: whether an account can hold more is not known; said, not repeated
        # by every timer run.
        report.warning(
            f"{cfg.path}: {len(cfg.domains)} domains: a free DuckDNS account has at most "
            f"{config.ACCOUNT_DOMAINS}; if updates answer KO, check that every name "
            "belongs to this token's account"
        )
    told = ""
    if cfg.notify:  # each URL read by Apprise as a notification will read it
        from duckdns import notify

        told = f"; {notify.check(cfg)}"
    report.out(
        f"{cfg.path}: OK (domains {', '.join(cfg.domains)}; ipv4 {cfg.ipv4}; ipv6 {cfg.ipv6}; "
        f"server {cfg.server}{'; recipe curl-config form' if cfg.legacy else ''}{told})"
    )
    from duckdns import localaddr, recipe, router, seed, state, upnp

    seed.warn_readable(cfg.token)  # a card's cloud-init user-data left readable
    recipe.warn_running(cfg.domains)  # duckdns.org's cron recipe, still updating them
    if not upnp.asks_router(cfg):
        report.out(upnp.NOT_ASKED)
        return EXIT_OK
    saved = state.load(state.path_for(cfg.path))  # what DuckDNS recorded, read only
    gateway, ipv6 = router.default_gateway(), localaddr.global_ipv6()
    # One line, whatever the router or the state file holds.
    report.out(report.safe(upnp.reachability(cfg, gateway, saved.ipv4.value, ipv6), 1024))
    return EXIT_OK


def cmd_notify(args: argparse.Namespace, path: str) -> int:
    """``notify --test``: one test message to every notify URL, and each one's verdict."""
    from duckdns import notify

    cfg = config.load(path)
    if not cfg.notify:
        raise config.ConfigError(
            f"{cfg.path}: no notify line: add 'notify = URL' with an Apprise URL "
            "(see duckdns.conf(5))"
        )
    if not notify.available():
        raise config.ConfigError(f"Apprise is not installed: {notify.INSTALL}")
    notify.check(cfg)
    whys = notify.send(cfg, notify.test_message(cfg))
    for target, why in zip(cfg.notify, whys, strict=True):
        report.out(f"{target.shown}: {f'NOT accepted: {why}' if why else 'accepted'}")
    return EXIT_TEMPFAIL if any(whys) else EXIT_OK


def cmd_update(args: argparse.Namespace, path: str) -> int:
    from duckdns import update

    return update.run(path, force=args.force, dry_run=args.dry_run)


def cmd_txt(args: argparse.Namespace, path: str) -> int:
    from duckdns import acme, update

    if args.txt_command == "wait":
        return acme.cmd_wait(args, path)
    try:
        cfg = acme.config_for(args, path)  # --for: that DuckDNS name only
    except acme.LookupFailed as exc:
        report.error(str(exc))
        return EXIT_TEMPFAIL
    if args.txt_command == "set":
        return update.send_one(cfg, f"TXT record set to {args.value!r}", txt=args.value)
    return update.send_one(cfg, "TXT record cleared", txt="", clear=True)


def cmd_clear(args: argparse.Namespace, path: str) -> int:
    from duckdns import update

    cfg = config.load(path)
    names = ", ".join(f"{name}.duckdns.org" for name in cfg.domains)
    if not args.yes:
        if not sys.stdin.isatty():
            report.error(
                f"'duckdns clear' empties the A and AAAA records of {names}: "
                "add --yes to do it without a terminal to confirm on"
            )
            return EXIT_USAGE
        sys.stderr.write(f"Clear the A and AAAA records of {names}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            report.out("nothing cleared")
            return EXIT_OK
    return update.send_one(cfg, "A and AAAA records cleared", clear=True)


def cmd_status(args: argparse.Namespace, path: str) -> int:
    from duckdns import status

    return status.run(args, path)


def cmd_verify(args: argparse.Namespace, path: str) -> int:
    from duckdns import verify

    return verify.run(args, path)


def backup_paths(path: str) -> list[str]:
    """What a restore needs: the config (with the token), the admin's unit choices and,
    where the package made it, the directory of the admin's hooks."""
    from duckdns import changed

    directory, name = os.path.split(path)
    paths = [os.path.join(os.path.realpath(directory), name), *BACKUP_UNIT_PATHS]
    if os.path.isdir(changed.HOOK_DIR):
        paths.append(changed.HOOK_DIR)
    return paths


def cmd_backup_paths(args: argparse.Namespace, path: str) -> int:
    report.out("\n".join(backup_paths(path)))
    return EXIT_OK


def cmd_debconf_read(args: argparse.Namespace, path: str) -> int:
    """The config's domains, ipv6 and whether it has a token, for debian/config."""
    report.out(config.current_answers(path))
    return EXIT_OK


def _stdin_answers() -> dict[str, str]:
    """The debconf answers on stdin (never argv or the environment: the token is among them)."""
    data = sys.stdin.buffer.read(config.MAX_SIZE + 1)
    if len(data) > config.MAX_SIZE:
        raise config.ConfigError("the answers are too long")
    try:
        return config.read_answers(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise config.ConfigError("the answers are not UTF-8 text") from None


def cmd_debconf_write(args: argparse.Namespace, path: str) -> int:
    """The debconf answers on stdin into the config (debian/postinst). Exit 78: nothing
    was written, and the message says why and what to do."""
    try:
        config.rewrite(path, _stdin_answers())
    except config.ConfigError as exc:
        kept = f"{path} is left unchanged" if os.path.lexists(path) else "nothing was written"
        raise config.ConfigError(f"{exc}; {kept}") from None
    except OSError as exc:
        report.error(f"{path} cannot be written ({exc.strerror}); it is left unchanged")
        return EXIT_TEMPFAIL
    return EXIT_OK


def cmd_debconf_check(args: argparse.Namespace, path: str) -> int:
    """One bounded update with the debconf answers on stdin (debian/config, interactive)."""
    from duckdns import tokencheck

    return tokencheck.check(path, _stdin_answers())


COMMANDS: dict[str, Callable[[argparse.Namespace, str], int]] = {
    "update": cmd_update,
    "check": cmd_check,
    "status": cmd_status,
    "txt": cmd_txt,
    "clear": cmd_clear,
    "verify": cmd_verify,
    "backup-paths": cmd_backup_paths,
    "notify": cmd_notify,
    DEBCONF_READ: cmd_debconf_read,
    DEBCONF_WRITE: cmd_debconf_write,
    DEBCONF_CHECK: cmd_debconf_check,
}


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _run(sys.argv[1:] if argv is None else argv)
        finally:
            if sys.stdout:  # argparse leaves --help in the buffer: fail here, not at exit
                sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (``duckdns status | head -1``): end as cat and
        # the other filters end, by SIGPIPE and without a word, not as an internal error.
        # Python ignores SIGPIPE and raises BrokenPipeError instead (see "Note on SIGPIPE"
        # in the signal module's documentation); the default action is restored and the
        # signal sent again, so a shell sees 128+13 (what ``set -o pipefail`` reports for
        # ``cat``) and no exit status of ours (1 is KO) is misread. Dying now also skips the
        # interpreter's final flush of stdout, which would fail again and print "Exception
        # ignored".
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
        return 128 + signal.SIGPIPE  # not reached


def _run(argv: list[str]) -> int:
    args = parse_args(argv)
    counts = vars(args)  # -v as +1 and -q as -1, wherever they stand (one dest per level)
    report.set_verbosity(
        sum(counts.get(f"verbose{n}", 0) - counts.get(f"quiet{n}", 0) for n in range(3))
    )
    path = getattr(args, "config", None) or config.default_path()
    try:
        return COMMANDS[args.command](args, path)
    except config.ConfigError as exc:
        report.error(str(exc))
        return EXIT_CONFIG
    except PermissionError as exc:  # e.g. status as a user: /var/lib/private is root's
        report.error(
            f"{exc.filename or 'a file'} cannot be read: run as root (e.g. 'sudo duckdns …')"
        )
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # not an internal error: main() ends quietly
    except ModuleNotFoundError as exc:
        package = SUGGESTED.get((exc.name or "").partition(".")[0])
        if package is None:
            return _internal_error(exc)
        report.error(
            f"'duckdns {args.command}' needs {package}, which is not installed: "
            f"install it with 'sudo apt install {package}'"
        )
        return EXIT_CONFIG
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """The last line of defence: redacted, never a raw traceback."""
    import traceback

    report.debug(traceback.format_exc())
    report.error(f"internal error: {type(exc).__name__}: {exc} (run with -vv for details)")
    return EXIT_SOFTWARE
