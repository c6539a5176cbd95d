"""The ``duckdns`` command: read config -> decide -> talk to DuckDNS -> record state -> report.

Modules that cost CPU to import (requests above all, through duckdns.api) are
imported inside the commands that need them: a timer run where nothing changed
never loads them (see scripts/bench).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from duckdns import __version__, report
from duckdns import config as configuration
from duckdns import state as statefile

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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's parser must not reset what was given before the command
    # (argparse copies the subparser's defaults over the main parser's values).
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="say more (twice: debug)")
    common.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                        help="say less (once: no change notices; twice: errors only)")
    common.add_argument("--config", metavar="PATH", type=Path, default=argparse.SUPPRESS,
                        help="configuration file (default: $STATE_DIRECTORY/duckdns.conf, "
                        f"else {configuration.DEFAULT_PATH})")
    parser = argparse.ArgumentParser(
        prog="duckdns", parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep DuckDNS names pointed at this host's address.")
    parser.add_argument("--version", action="version", version=f"duckdns {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    p = add("update", "update the A/AAAA records if the address changed")
    p.add_argument("--force", action="store_true", help="send an update even if nothing changed")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request that would be sent (token shown as ***) and stop")
    add("check", "validate the configuration, without any network traffic")
    p = add("status", "show what the last runs did")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("txt", "set or clear the TXT record (ACME DNS-01)")
    txt = p.add_subparsers(dest="txt_command", metavar="ACTION", required=True)
    txt_set = txt.add_parser("set", parents=[common], help="set the TXT record to VALUE")
    txt_set.add_argument("value", metavar="VALUE")
    txt.add_parser("clear", parents=[common], help="clear the TXT record")
    add("clear", "clear the A and AAAA records")
    p = add("verify", "check that the names resolve to the address DuckDNS recorded")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="extra names (e.g. a CNAME such as piserver.example.com)")
    p.add_argument("--resolver", metavar="ADDR[:PORT]",
                   help="DNS server to ask (default: the first nameserver in /etc/resolv.conf)")
    add("backup-paths", "print the files a backup must hold to restore this setup")
    return parser


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


def config_path(args: argparse.Namespace) -> Path:
    return getattr(args, "config", None) or configuration.default_path()


# -- commands ----------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    cfg = configuration.load(config_path(args))
    report.out(
        f"{cfg.path}: OK (domains {', '.join(cfg.domains)}; ipv4 {cfg.ipv4}; ipv6 {cfg.ipv6}; "
        f"server {cfg.server}{'; recipe curl-config form' if cfg.legacy else ''})"
    )
    return EXIT_OK


def _probe(targets):
    from duckdns import probe

    return probe.public_ipv4(targets)


def cmd_update(args: argparse.Namespace) -> int:
    from duckdns import decide

    cfg = configuration.load(config_path(args))
    state_path = statefile.path_for(cfg.path)
    state = statefile.load(state_path)
    plan = decide.plan_update(cfg, state, force=args.force or args.dry_run,
                              probe_ipv4=None if args.dry_run else _probe)
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


def _send(cfg, state: dict, state_path: Path, plan) -> int:
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
    state.update(last_result="updated" if reply.updated else "nochange", last_success=now,
                 last_error="", sent_ipv6=plan.ipv6_param or "", fingerprint=cfg.fingerprint())
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


def _failed(state: dict, state_path: Path, result: str, message: str, code: int) -> int:
    state.update(last_result=result, last_error=report.redact(message))
    statefile.save(state_path, state)
    report.error(message)
    return code


def _simple_request(args: argparse.Namespace, what: str, **query) -> int:
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


def cmd_txt(args: argparse.Namespace) -> int:
    if args.txt_command == "set":
        return _simple_request(args, f"TXT record set to {args.value!r}", txt=args.value)
    return _simple_request(args, "TXT record cleared", txt="", clear=True)


def cmd_clear(args: argparse.Namespace) -> int:
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


def cmd_status(args: argparse.Namespace) -> int:
    path = config_path(args)
    state_path = statefile.path_for(path)
    if not os.access(path.parent, os.X_OK) and path.parent.exists():
        raise configuration.ConfigError(f"{path.parent} is not readable: run as root")
    state = statefile.load(state_path)
    if args.json:
        import json

        report.out(json.dumps({"config": str(path), "state_file": str(state_path), **state},
                              indent=2, sort_keys=True))
        return EXIT_OK
    rows = [
        ("Config", str(path) + ("" if path.exists() else " (missing)")),
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


def cmd_verify(args: argparse.Namespace) -> int:
    from duckdns import verify

    return verify.run(args, config_path(args))


def backup_paths(path: Path) -> list[str]:
    """What a restore needs: the config (with the token) and the admin's unit choices."""
    real = Path(os.path.realpath(path.parent)) / path.name
    return [str(real), *BACKUP_UNIT_PATHS]


def cmd_backup_paths(args: argparse.Namespace) -> int:
    report.out("\n".join(backup_paths(config_path(args))))
    return EXIT_OK


COMMANDS = {
    "update": cmd_update, "check": cmd_check, "status": cmd_status, "txt": cmd_txt,
    "clear": cmd_clear, "verify": cmd_verify, "backup-paths": cmd_backup_paths,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    report.set_verbosity(_verbosity(argv))
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except configuration.ConfigError as exc:
        report.error(str(exc))
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
