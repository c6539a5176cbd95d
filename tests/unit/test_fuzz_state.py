"""Whatever ``state.json`` holds, ``duckdns update`` runs: the contract of duckdns.state.

Every state value either loads or is dropped with one warning, and the file is rewritten:
no state can make a run fail, and exit 70 is for bugs only. Checked end to end against the
test DuckDNS server (``duck``, which answers OK), probe off:

- Hypothesis writes hostile values into any fields of a valid state (wrong types for each
  field of duckdns.state.FIELDS, booleans, NaN and infinities, 1e308, 10**400, negative
  times, nested lists and objects): hundreds of examples through ``state.parse``, the plan
  and ``state.save`` directly, and a few through a whole update in this process (the
  ``runner``);
- explicit whole-file cases run the real program: absurd nesting, a few MB, invalid UTF-8,
  not an object, truncated, a FIFO, a directory, symlinks, /dev/zero.

Each run exits 0 (75 only where the file cannot be rewritten), never 70; prints at most
one line about the state; and leaves a state.json that is strict JSON (no NaN) whose fields
have their types: a string where the default is a string, a whole number for ``failures``,
a finite number or null where the default is None.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.helpers import assert_no_canary

from duckdns import decide, state, transition
from duckdns.state import FIELDS

RUN_BOUND = 20  # seconds: a run that blocks on its state file is killed here (and fails)
MEMORY = 1 << 30  # bytes of address space for a real run: /dev/zero must not eat the host

SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.booleans(),  # bool is an int subclass: True is not a time
    st.none(),
    st.sampled_from(
        [10**400, -(10**400), 1e308, -1e308, -1, -1.5, 0, 2**63, 2**64 + 1, "", "NaN", "1"]
    ),
    st.sampled_from(["updated", "ko", "error", "ok", "failing", "distrusted", "up", "down"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
HOSTILE_FIELDS = st.dictionaries(st.sampled_from(sorted(FIELDS)), VALUES, min_size=1, max_size=6)


def _strict_constant(name: str):
    raise AssertionError(f"state.json holds {name}: not JSON")


def assert_sane(path: Path) -> dict:
    """state.json is strict JSON, an object, and each known field has its type."""
    data = json.loads(path.read_bytes(), parse_constant=_strict_constant)
    assert isinstance(data, dict), data
    for key, default in FIELDS.items():
        if key not in data:
            continue
        value = data[key]
        if default is None:
            ok = value is None or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and -1e15 < value < 1e15  # finite (NaN compares false), a time, not 10**400
            )
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1e15
        else:
            ok = isinstance(value, type(default))
        assert ok, f"state.json: {key} = {str(value)[:80]!r} (default {default!r})"
    return data


def state_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "state" in line.lower()]


# -- hostile values in a valid state, in this process ------------------------------------------


@pytest.fixture
def valid(conf, runner):
    """A config, its runner, and the valid state.json a first run left."""
    cfg = conf()
    run = runner(cfg)
    code, _, err = run("update")
    assert code == 0, err
    path = cfg.parent / "state.json"
    return run, path, json.loads(path.read_text())


@settings(max_examples=1000, deadline=None, database=None)
@given(hostile=HOSTILE_FIELDS)
def test_any_field_values_are_read_or_dropped(hostile, tmp_path_factory):
    """state.parse keeps a field only with its type; the plan and the wait take what it
    gives; state.save writes strict JSON of it."""
    base = state.as_dict(state.State())
    records, dropped = state.parse({**base, **hostile})
    assert set(dropped) <= set(hostile)
    for key in set(hostile) - set(dropped):
        record, name = state.records.KEYS[key]
        assert (
            getattr(getattr(records, record), name) == hostile[key] or hostile[key] != hostile[key]
        )
    from duckdns import config

    cfg = config.parse(
        "domains = piserver\ntoken = "
        + "a" * 8
        + "-aaaa-aaaa-aaaa-"
        + "a" * 12
        + "\nprobe = off\n",
        "/x/duckdns.conf",
    )
    now = 1_800_000_000
    transition.waiting(records, now, False, "f")
    decide.plan(cfg, records, now, "f", None, None, force=False)
    path = tmp_path_factory.mktemp("state") / "state.json"
    assert state.save(str(path), records) == ""
    assert_sane(path)


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile=HOSTILE_FIELDS, force=st.booleans())
def test_any_field_values(valid, hostile, force):
    """A few of the same, through a whole update."""
    run, path, base = valid
    path.write_text(json.dumps({**base, **hostile}, allow_nan=True))
    run.later(61)
    code, out, err = run("update", *(["--force"] if force else []))
    assert code == 0, f"exit {code}: {err}"
    assert len(state_lines(err)) <= 1, err
    assert_sane(path)


WRONG_TIMES = {
    "true": True,
    "a string": "1700000000",
    "1e308": 1e308,
    "10**400": 10**400,
    "NaN": float("nan"),
    "-Infinity": float("-inf"),
    "a list": [1],
}


@pytest.mark.parametrize("value", list(WRONG_TIMES.values()), ids=list(WRONG_TIMES))
@pytest.mark.parametrize("field", sorted(k for k, v in FIELDS.items() if v is None))
def test_time_fields_are_dropped(field, value):
    """Each time field, each kind of wrong value: dropped to None, one field named."""
    records, dropped = state.parse({**FIELDS, field: value})
    assert dropped == [field]
    record, name = state.records.KEYS[field]
    assert getattr(getattr(records, record), name) is None


@pytest.mark.parametrize("value", list(WRONG_TIMES.values()), ids=list(WRONG_TIMES))
@pytest.mark.parametrize("field", ["next_attempt", "in_flight"])
def test_time_fields(valid, field, value):
    """Wrong times where they matter most, through a whole update: the run goes on, the
    file is repaired."""
    run, path, base = valid
    path.write_text(json.dumps({**base, field: value}, allow_nan=True))
    code, out, err = run("update", "--force")
    assert code == 0, f"exit {code}: {err}"
    assert len(state_lines(err)) <= 1, err
    assert_sane(path)


# -- whole files, the real program -------------------------------------------------------------


def run_update(run) -> tuple[int | str, str, float]:
    """``duckdns --config CFG update`` as the package runs it (``run``: the runner's, a
    process), bounded in time and memory."""
    start = time.monotonic()
    try:
        proc = run("update", cwd=run.cfg.parent, timeout=RUN_BOUND, memory=MEMORY)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        assert_no_canary(err)
        return f"killed after {RUN_BOUND} s", err, time.monotonic() - start
    return proc.returncode, proc.stderr, time.monotonic() - start


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WHOLE_FILES = {
    "every field NaN": json.dumps(dict.fromkeys(FIELDS, float("nan"))).encode(),
    "every field Infinity": json.dumps(dict.fromkeys(FIELDS, float("inf"))).encode(),
    "every field -Infinity": json.dumps(dict.fromkeys(FIELDS, float("-inf"))).encode(),
    "every field a string": json.dumps(dict.fromkeys(FIELDS, "x")).encode(),
    "every field true": json.dumps(dict.fromkeys(FIELDS, True)).encode(),
    "every field 1e308": json.dumps(dict.fromkeys(FIELDS, 1e308)).encode(),
    "every field 10**400": json.dumps(dict.fromkeys(FIELDS, 10**400)).encode(),
    "every field -1": json.dumps(dict.fromkeys(FIELDS, -1)).encode(),
    "every field a list": json.dumps(dict.fromkeys(FIELDS, [1, "a"])).encode(),
    "every field an object": json.dumps(dict.fromkeys(FIELDS, {"a": 1})).encode(),
    "nested 10**5 deep": _nested(10**5),
    "a field nested 10**5 deep": b'{"last_run": ' + _nested(10**5) + b"}",
    "an integer of 5000 digits": b'{"failures": ' + b"9" * 5000 + b"}",
    "4 MB of whitespace": b" " * (4 << 20) + b"{}",
    "a 4 MB string": json.dumps({"last_error": "x" * (4 << 20)}).encode(),
    "invalid UTF-8": b'{"last_error": "\xff\xfe", "last_run": 1}',
    "UTF-16": json.dumps({"last_run": 1}).encode("utf-16"),
    "a list": b"[]",
    "null": b"null",
    "a string": b'"state"',
    "empty": b"",
    "truncated": b'{"last_run": 17',
    "NUL bytes": b"\0" * 64,
}


@pytest.mark.parametrize("content", list(WHOLE_FILES.values()), ids=list(WHOLE_FILES))
def test_whole_file(conf, runner, content):
    cfg = conf()
    path = cfg.parent / "state.json"
    path.write_bytes(content)
    code, err, elapsed = run_update(runner(cfg, process=True))
    assert code == 0, f"exit {code} after {elapsed:.1f} s: {err[-2000:]}"
    assert len(state_lines(err)) <= 1, err
    assert_sane(path)
    assert path.stat().st_size < 1 << 20, "the rewritten state still holds megabytes"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _symlink_to_valid(path: Path) -> None:
    (path.parent / "elsewhere.json").write_text('{"last_run": 1}')
    path.symlink_to(path.parent / "elsewhere.json")


def _dangling_symlink(path: Path) -> None:
    path.symlink_to(path.parent / "missing.json")


def _symlink_to_fifo(path: Path) -> None:
    os.mkfifo(path.parent / "pipe")
    path.symlink_to(path.parent / "pipe")


def _symlink_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


NOT_FILES = {
    "a FIFO": _fifo,
    "a directory": _directory,
    "a symlink to a valid file": _symlink_to_valid,
    "a dangling symlink": _dangling_symlink,
    "a symlink to a FIFO": _symlink_to_fifo,
    "a symlink to /dev/zero": _symlink_to_dev_zero,
}


@pytest.mark.parametrize("make", list(NOT_FILES.values()), ids=list(NOT_FILES))
def test_not_a_regular_file(conf, runner, make):
    """Never blocks, never 70; where state.json cannot be replaced, 75 is a real failure."""
    cfg = conf()
    path = cfg.parent / "state.json"
    make(path)
    code, err, elapsed = run_update(runner(cfg, process=True))
    assert code in (0, 75), f"exit {code} after {elapsed:.1f} s: {err[-2000:]}"
    assert elapsed < 10, f"{elapsed:.1f} s"
    if path.is_file() and not path.is_symlink():
        assert_sane(path)
    if not path.is_dir():
        assert len(state_lines(err)) <= 1, err


# -- a state from 0.1.0, upgraded: its fields are checked like any other --------------------------

OLD_PROBE_ANSWERS = st.one_of(
    VALUES,
    st.text(max_size=40),  # any code points, controls and separators included
    st.sampled_from(
        ["9" * 60000, "\ud800", "1.2.3.4\x1b[2J\r\n<3>FAKE\u2028\u202e", "203.0.113.7"]
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=OLD_PROBE_ANSWERS, trusted=st.sampled_from([False, True, None, 0, "false"]))
def test_a_010_state_with_any_probe_answer(valid, answer, trusted):
    """0.1.0 kept ``probe_trusted`` and ``probe_ipv4``; whatever they hold, ``status`` and
    ``update`` run, show nothing raw, and the rewritten state holds only valid fields."""
    from support.display import assert_displayable

    from duckdns.state import MAX_TEXT

    run, path, base = valid
    old = {k: v for k, v in base.items() if not k.startswith("probe_")}
    old.update(probe_trusted=trusted, probe_ipv4=answer)
    path.write_text(json.dumps(old, allow_nan=True))
    for command in (["status"], ["status", "--json"], ["update", "--force"]):
        code, out, err = run(*command)
        assert code == 0, f"{command}: exit {code}: {err}"
        assert len(state_lines(err)) <= 1, err
        assert_displayable(out, err, where=f"output of {' '.join(command)}")
    saved = assert_sane(path)
    assert isinstance(saved["probe_ipv4"], str) and len(saved["probe_ipv4"]) <= MAX_TEXT
