"""Fixtures for the system tests: a booted Debian container per test, the test DuckDNS
server inside it, the built .deb.

A machine without root, the tools or the Debian mirror (needed only while a cache is
built) skips these tests with the reason; with CI=true a skip here is a failure.
On a failing test the container's journal is attached to the report.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import harness
import pytest
import roots
import vm
import vm_scenario
from support import release
from support.helpers import CANARY, IN_CI, package_version, skip_or_fail

SYSTEM_DIR = Path(__file__).resolve().parent


def _in_system_dir(item) -> bool:
    return SYSTEM_DIR in Path(str(item.fspath)).resolve().parents


# After the first part (bookworm's scenarios, then trixie's): the files whose caches are
# built in the background meanwhile, and test_vm.py, whose VMs boot in the background
# too. Each late file's xdist group (tests/conftest.py): test_vm.py stays at the end of
# "serial", in the process that booted its VMs and waits for their results; the others
# are two groups of about 4 minutes each (a cold run's timeline), which the two workers
# take as they run out of work, so that neither waits idle for the other at the end.
LATE_FILES = {
    "test_piuparts.py": "late-others",
    "test_releases.py": "late-others",
    "test_cloudinit.py": "late-others",  # its cloud-init roots
    "test_events.py": "late-events",  # its NetworkManager and ifupdown roots (roots.*_PACKAGES)
    "test_vm.py": "serial",
}
# The order xdist hands out the late work: test_releases.py's run of the unit tests in the
# other release's root (its own group, marked there) first, "serial" (test_vm.py) last.
LATE_ORDER = ("other-release-units", "late-others", "late-events", "serial")


def _group(item) -> str | None:
    marker = item.get_closest_marker("xdist_group")
    return marker.args[0] if marker else None


def _late(item) -> int:
    """0 for a test that runs in the first part, else its rank in LATE_ORDER, from 1."""
    if not _in_system_dir(item) or Path(str(item.fspath)).name not in LATE_FILES:
        return 0
    return LATE_ORDER.index(_group(item)) + 1


def pytest_itemcollected(item):
    """A late file's group, before tests/conftest.py gives every other system test "serial"."""
    name = Path(str(item.fspath)).name
    if _in_system_dir(item) and name in LATE_FILES and _group(item) is None:
        item.add_marker(pytest.mark.xdist_group(LATE_FILES[name]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Whether this process runs the "serial" group: only that one starts the background
    builds and the VM boots (rootfs_tarball), whose results its own test_vm.py reads."""
    if _in_system_dir(item) and _group(item) == "serial":
        item.config._duckdns_serial = True


def _suite_of(item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("suite", harness.SUITE) if callspec else harness.SUITE


def _suite_param(item) -> str | None:
    """The release a test is parametrized with; None when it is not."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("suite") if callspec else None


def pytest_generate_tests(metafunc):
    """A test marked ``both_suites`` runs once per release (harness.SUITES): its container
    (and whatever else asks for the ``suite`` fixture) is that release's."""
    if "suite" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_suites"):
        metafunc.parametrize("suite", harness.SUITES, scope="session")


# trylast: after pytest's own reordering by session-scoped parameters (the suite).
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _in_system_dir(item):
            item.add_marker(pytest.mark.system)
    # The default release's scenarios first (the other's root builds meanwhile), then the
    # other release's, then the late files; otherwise in collection order (stable sort).
    order = {suite: i for i, suite in enumerate(harness.SUITES)}
    items.sort(key=lambda i: (_late(i), order.get(_suite_of(i), 0) if _in_system_dir(i) else 0))
    # The late files and the release each of their tests runs on (None: not
    # parametrized), in the order they run: their caches are built in that order.
    config._duckdns_background = list(
        dict.fromkeys((Path(str(i.fspath)).name, _suite_param(i)) for i in items if _late(i))
    )
    config._duckdns_suites = sorted(
        {_suite_of(i) for i in items if _in_system_dir(i)}, key=lambda s: order.get(s, 0)
    )


def pytest_configure(config):
    def report(message: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        tr = config.pluginmanager.getplugin("terminalreporter")
        if tr is None:
            print(message, file=sys.stderr)
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                tr.write_line(message)
        else:
            tr.write_line(message)

    roots._reporter = report


def pytest_unconfigure(config):
    harness.join_background()
    vm_scenario.shutdown()
    roots._reporter = None
    harness.restore_binfmt()


def pytest_terminal_summary(terminalreporter):
    phases = harness.phase_summary()
    if not phases:
        return
    terminalreporter.section("system test phases")
    totals: dict[str, list[float]] = {}
    for name, seconds in phases:
        key = name if not name.startswith("extract") else "extract root"
        totals.setdefault(key, []).append(seconds)
    for name, times in totals.items():
        terminalreporter.write_line(
            f"{name:60s} n={len(times):3d} total={sum(times):7.1f}s max={max(times):6.1f}s"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not _in_system_dir(item):
        return
    setattr(item, f"rep_{rep.when}", rep)
    # CI must never pass with the system tests skipped.
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"
    if rep.failed and rep.when in ("setup", "call"):
        # The container is still up here (fixtures are torn down after this report).
        for value in list(getattr(item, "funcargs", {}).values()):
            container = (
                value if isinstance(value, harness.Container) else getattr(value, "container", None)
            )
            if isinstance(container, harness.Container) and not container.closed:
                _attach_diagnostics(rep, container)
                break


def _attach_diagnostics(rep, container: harness.Container) -> None:
    try:
        journal = container.journal("-b", "0")
    except Exception as exc:  # noqa: BLE001 - diagnostics must not mask the failure
        journal = f"(journal unavailable: {exc})"
    lines = journal.splitlines()
    if len(lines) > 400:
        lines = ["… (earlier lines cut)"] + lines[-400:]
    rep.sections.append((f"container {container.name} journal", "\n".join(lines)))
    for server_log in sorted(container.hostdir.glob("*.log")):  # Container.serve's
        rep.sections.append((server_log.name, server_log.read_text(errors="replace")))


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def system_env(request):
    """Checks root, tools and (when a cache must be built) the mirror."""
    suites = getattr(request.config, "_duckdns_suites", [harness.SUITE])
    uncached = not all(harness.cached("rootfs", suite=s) for s in suites)
    problem = harness.environment_problem(need_mirror=uncached)
    if problem:
        skip_or_fail(problem)
    return True


@pytest.fixture(scope="session")
def suite() -> str:
    """The release under test; ``both_suites`` scenarios are parametrized over it."""
    return harness.SUITE


def _in_order(*jobs) -> None:
    """Background jobs that share the mirror and the CPUs: one after the other."""
    for fn, *args in jobs:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the test that needs it reports it
            harness.log(f"[system] background build {fn.__name__}{tuple(args)} failed: {exc}")


def _boot_vms() -> None:
    """The VM scenarios need minutes of emulated CPU: once the arm64 root and the boot
    files exist, both boots are queued (vm_scenario), to run while the container tests
    wait for their timers; test_vm.py, at the end, waits for their results."""
    vm.vm_boot_files()
    deb = harness.find_deb()
    if deb is not None:
        vm_scenario.start_all(deb)


# What each late file's tests need cached (roots.base_tarball's kinds; "piuparts": the
# base piuparts starts from), built in the background while the first part runs.
LATE_CACHES = {
    "test_events.py": ("networkmanager", "ifupdown"),
    "test_piuparts.py": ("piuparts",),
    "test_releases.py": ("devroot",),
    "test_cloudinit.py": ("cloudinit",),
}


def _cache_jobs(name: str, suite: str | None) -> list[tuple]:
    """The background jobs for the caches a late file's tests of ``suite`` need (None:
    a test not parametrized by release, which may use every release's)."""
    jobs: list[tuple] = []
    for kind in LATE_CACHES.get(name, ()):
        if kind == "devroot":  # the other release's: the host is the default one
            wanted = [s for s in harness.SUITES if s != harness.SUITE]
        else:
            wanted = [suite] if suite else list(harness.SUITES)
        for s in wanted:
            if kind == "piuparts":
                if shutil.which("piuparts"):
                    jobs.append((harness.piuparts_tarball, s))
            elif not harness.cached(kind, suite=s):
                jobs.append((harness.base_tarball, kind, None, None, s))
    return jobs


_background_started: set[str] = set()


def _start_vms(config) -> None:
    """Once per session, at the first booted test, before its root may be built: the VM
    roots under qemu-user, then both boots one after the other, are the longest chain of
    a cold run (about 25 minutes on a loaded 2-core machine: tests/system/README.md)."""
    if "vms" in _background_started:
        return
    _background_started.add("vms")
    late_files = {name for name, _ in getattr(config, "_duckdns_background", [])}
    if "test_vm.py" not in late_files or vm.environment_problem() is not None:
        return
    if harness.mirror_reachable():
        # Two threads: the arm64 root (then the kernel and initrd from it, then the VM
        # boots), the armhf root.
        harness.build_in_background([(_boot_vms,), (vm.vm_root, "armhf")])


def _start_background(config) -> None:
    """Once per session, once the default release's root exists: the caches of the late
    tests and of the other releases."""
    if "caches" in _background_started:
        return
    _background_started.add("caches")
    late = getattr(config, "_duckdns_background", [])
    suites = getattr(config, "_duckdns_suites", [harness.SUITE])
    late_files = {name for name, _ in late}
    # Two threads. One: the other releases' bootable roots (their scenarios come right
    # after the default release's), then the other release's devroot (test_releases.py's
    # unit-test run wants it first, on the other xdist worker: tests/conftest.py). Two:
    # the late files' caches in the order their tests run. A test asking for a root still
    # queued builds it itself; the file lock then makes the queue skip it.
    others = [
        (harness.base_tarball, "rootfs", None, None, s)
        for s in suites
        if s != harness.SUITE and not harness.cached("rootfs", suite=s)
    ]
    if "test_releases.py" in late_files:
        others += _cache_jobs("test_releases.py", None)
    caches: list[tuple] = []
    for name, suite in late:
        caches += [job for job in _cache_jobs(name, suite) if job not in others + caches]
    jobs = [(_in_order, *queue) for queue in (others, caches) if queue]
    if jobs and harness.mirror_reachable():
        harness.build_in_background(jobs)


@pytest.fixture(scope="session")
def rootfs_tarball(system_env, suite, request):
    serial = getattr(request.config, "_duckdns_serial", False)
    if serial:
        _start_vms(request.config)
    tarball = harness.base_tarball("rootfs", suite=suite)
    if serial:
        _start_background(request.config)
    return tarball


@pytest.fixture(scope="session")
def deb(system_env) -> Path:
    """The .deb that `make deb` built (make test builds it first)."""
    path = harness.find_deb()
    if path is None:
        pytest.fail(
            f"no dist/duckdns_{package_version()}-*_all.deb in {harness.REPO}: "
            "run `make deb` first (`make test` does)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def previous_deb(system_env, tmp_path_factory) -> Path:
    """The previous release (debian/changelog's second entry), built from the commit it
    was released from (support.release.previous_release)."""
    import pkgtools  # noqa: PLC0415 - tests/package, on pytest.ini's pythonpath

    version, commit = release.previous_release()
    with harness.phase(f"make deb (previous release {version})"):
        deb = pkgtools.build_commit(commit, tmp_path_factory.mktemp("previous") / "tree")
    assert deb.name == f"duckdns_{version}_all.deb", (deb.name, commit)
    return deb


@pytest.fixture
def container(rootfs_tarball, request):
    """A freshly extracted, booted container; always powered off and removed."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name.removeprefix("test_"))[:24]
    c = harness.Container(name=f"dd-{name.strip('-')}", tarball=rootfs_tarball)
    try:
        c.prepare()
        c.boot()
        yield c
    finally:
        c.close()


@pytest.fixture
def duckdns(container) -> harness.DuckDNS:
    """The test DuckDNS server inside the container, accepting only the canary token
    for the domain ``piserver``."""
    server = harness.DuckDNS(container, token=CANARY, domains=["piserver"])
    server.start()
    return server
