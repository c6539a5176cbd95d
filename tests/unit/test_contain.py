"""duckdns.contain: a child the parent always stops, whatever the job does."""

from __future__ import annotations

import os
import time

from duckdns import contain


def test_a_verdict_comes_back_and_the_childs_output_goes_nowhere(capfd):
    def job() -> bytes:
        print("from the child")
        os.write(2, b"to stderr\n")
        return b"http 404"

    assert contain.run(job, 5) == contain.Outcome(b"http 404", "exited")
    assert capfd.readouterr() == ("", "")


def test_a_job_that_takes_too_much_memory_is_stopped_by_its_own_limit():
    def job() -> bytes:
        hoard = [bytearray(1 << 20) for _ in range(4 * contain.MEMORY // (1 << 20))]
        return b"ok %d" % len(hoard)

    start = time.monotonic()
    assert contain.run(job, 10) == contain.Outcome(b"memory", "exited")
    assert time.monotonic() - start < 5


def test_a_job_that_never_ends_is_killed_at_the_bound_and_reaped():
    start = time.monotonic()
    outcome = contain.run(lambda: time.sleep(60) or b"ok", 1)
    assert outcome == contain.Outcome(b"", "killed")
    assert time.monotonic() - start < 2
    assert _zombies() == [], "a child left unreaped"


def _zombies() -> list[int]:
    """This process's children that have ended and wait to be reaped (/proc, proc(5))."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


def test_a_job_that_raises_or_answers_out_of_grammar_has_no_verdict_of_its_own():
    def broken() -> bytes:
        raise RuntimeError("secret text")

    assert contain.run(broken, 5) == contain.Outcome(b"crash", "exited")
    assert contain.run(lambda: b"SECRET\x1b[2J", 5) == contain.Outcome(b"", "exited")


def test_the_child_runs_under_its_own_data_and_cpu_limits():
    """The data limit is MEMORY on top of what the child held at the fork (its parent's
    heap: this test process's is large), the CPU limit its bound and a second."""
    held = contain._data()
    assert held > 0

    def limits() -> bytes:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cpu = resource.getrlimit(resource.RLIMIT_CPU)
        added = soft - held
        fits = soft == hard and contain.MEMORY <= added <= contain.MEMORY + 16 * contain.MIB
        return b"ok" if fits and cpu == (4, 5) else b"refused"

    assert contain.run(limits, 3.5) == contain.Outcome(b"ok", "exited")
