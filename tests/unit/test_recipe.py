"""duckdns.recipe: duckdns.org's cron recipe found, read within bounds, reported.

The recipe's text is duckdns.org's install page for Linux ("cron" tab): duck.sh holds
``echo url="https://www.duckdns.org/update?domains=…&token=…&ip=" | curl -k -o
~/duckdns/duck.log -K -`` and the crontab ``*/5 * * * * ~/duckdns/duck.sh >/dev/null 2>&1``;
copies of it (e.g. scripts/duckdns.sh in haerinmv/infra-cloudhybrid-pi) keep that line.
The file system is a temporary tree standing for /root, /home, the cron spool and /etc.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from support.helpers import CANARY, DEBIAN_PYTHON, ROOT

from duckdns import config, recipe, report

DUCK_SH = (
    'echo url="https://www.duckdns.org/update?domains={names}&token={token}&ip=" '
    "| curl -k -o ~/duckdns/duck.log -K -\n"
)
CRON_LINE = "*/5 * * * * {path} >/dev/null 2>&1"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Stand-ins for /root, /home, the spool, /etc/crontab and /etc/cron.d."""
    for d in ("root", "home/pi/duckdns", "spool", "cron.d"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "crontab").write_text("# /etc/crontab\nSHELL=/bin/sh\n")
    monkeypatch.setattr(recipe, "HOMES", (str(tmp_path / "root"), str(tmp_path / "home")))
    monkeypatch.setattr(recipe, "SPOOL", str(tmp_path / "spool"))
    monkeypatch.setattr(recipe, "CRON_D", str(tmp_path / "cron.d"))
    monkeypatch.setattr(recipe, "SYSTEM_CRONTABS", (str(tmp_path / "crontab"),))
    return tmp_path


def user_crontab(tree, text: str, user: str = "root"):
    """A crontab in the spool as crontab(1) leaves it: named after and owned by the user
    (the tests run as root: root's crontab)."""
    path = tree / "spool" / user
    path.write_text(text)
    path.chmod(0o600)
    return path


def duck_sh(tree, names: str = "home,boat", token: str = CANARY):
    path = tree / "home/pi/duckdns/duck.sh"
    path.write_text(DUCK_SH.format(names=names, token=token))
    path.chmod(0o700)
    return path


def test_the_install_page_recipe_is_found_and_read(tree):
    script = duck_sh(tree)
    tab = user_crontab(tree, "# m h dom mon dow command\n" + CRON_LINE.format(path=script) + "\n")
    jobs = recipe.find()
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.crontab, job.number, job.script) == (str(tab), 2, str(script))
    assert (job.domains, job.token) == (("home", "boat"), CANARY)
    assert recipe.usable(jobs) is job
    removal = job.removal()
    assert "crontab -u root -e" in removal and "line 2" in removal
    assert f"delete {script}" in removal and "duck.log" in removal
    assert CANARY not in recipe.advice(jobs)


def test_a_system_crontab_line_names_its_file_and_its_user(tree):
    script = duck_sh(tree)
    (tree / "cron.d/duckdns").write_text(f"*/5 * * * * root {script}\n")
    (tree / "cron.d/skipped.dpkg-old").write_text(f"*/5 * * * * root {script}\n")  # cron skips
    [job] = recipe.find()
    assert job.crontab == str(tree / "cron.d/duckdns") and job.user == "root"
    assert f"edit {tree / 'cron.d/duckdns'} and delete line 1" in job.removal()


def test_the_url_on_the_crontab_line_itself_is_read_and_never_shown(tree, capsys):
    line = f'@reboot curl -s "https://www.duckdns.org/update?domains=home&token={CANARY}&ip="'
    user_crontab(tree, line + "\n")
    [job] = recipe.find()
    assert (job.domains, job.token, job.script) == (("home",), CANARY, "")
    recipe.warn_running(("home",))
    err = capsys.readouterr().err
    assert "delete line 1" in err and CANARY not in err


@pytest.mark.parametrize(
    "text",
    [
        # Built from shell variables: the job is reported, its values are not guessed.
        'echo url="https://www.duckdns.org/update?domains=$D&token=$T&ip=" | curl -K -\n',
        f'echo url="https://www.duckdns.org/update?domains=a_b&token={CANARY}&ip="\n',
        'echo url="https://www.duckdns.org/update?domains=home&token=nope&ip="\n',
    ],
    ids=["variables", "bad-name", "bad-token"],
)
def test_a_script_the_updater_would_refuse_gives_no_answers(tree, text):
    script = tree / "home/pi/duckdns/duck.sh"
    script.write_text(text)
    user_crontab(tree, CRON_LINE.format(path=script) + "\n")
    [job] = recipe.find()
    assert (job.domains, job.token) == ((), "")
    assert recipe.usable([job]) is None


def test_two_recipes_that_disagree_give_no_answers(tree):
    script = duck_sh(tree)
    other = tree / "root/duck.sh"
    other.write_text(DUCK_SH.format(names="other", token=CANARY))
    user_crontab(tree, f"{CRON_LINE.format(path=script)}\n{CRON_LINE.format(path=other)}\n")
    jobs = recipe.find()
    assert len(jobs) == 2 and recipe.usable(jobs) is None


def test_symlinks_and_files_of_another_owner_are_not_read(tree):
    """A user's duck.sh that is a symbolic link (or lies below one) to root's file, or a
    hard link to one (owned by root, not by the home's owner), is not read."""
    secret = tree / "root/secret.sh"
    secret.write_text(DUCK_SH.format(names="rootname", token=CANARY))
    duckdir = tree / "home/pi/duckdns"
    (duckdir / "duck.sh").symlink_to(secret)
    (tree / "home/pi/link").symlink_to(tree / "root")
    os.chown(tree / "home/pi", 1000, 1000)
    (tree / "home/pi/hard").mkdir()
    os.chown(tree / "home/pi/hard", 1000, 1000)
    os.link(secret, tree / "home/pi/hard/duck.sh")
    tab = "".join(
        CRON_LINE.format(path=p) + "\n"
        for p in (duckdir / "duck.sh", tree / "home/pi/link/duck.sh", tree / "home/pi/hard/duck.sh")
    )
    (tree / "root/duck.sh").symlink_to(secret)
    user_crontab(tree, tab + CRON_LINE.format(path=tree / "root/duck.sh") + "\n")
    jobs = recipe.find()
    assert len(jobs) == 4
    assert all((job.domains, job.token) == ((), "") for job in jobs)


def test_paths_outside_the_homes_are_not_read(tree):
    outside = tree / "elsewhere/duck.sh"
    outside.parent.mkdir()
    outside.write_text(DUCK_SH.format(names="x", token=CANARY))
    user_crontab(tree, CRON_LINE.format(path=outside) + "\n")
    assert recipe.find() == []


def test_reading_is_bounded(tree, monkeypatch):
    script = duck_sh(tree)
    # The URL beyond the first MAX_SCRIPT_SIZE bytes is not read.
    script.write_text("#" * recipe.MAX_SCRIPT_SIZE + "\n" + DUCK_SH.format(names="a", token=CANARY))
    user_crontab(tree, (CRON_LINE.format(path=script) + "\n") * (recipe.MAX_JOBS + 5))
    jobs = recipe.find()
    assert len(jobs) == recipe.MAX_JOBS and jobs[0].token == ""
    for n in range(recipe.MAX_CRONTABS + 10):
        (tree / f"cron.d/tab{n}").write_text("# nothing\n")
    opened = []
    real = recipe._read
    monkeypatch.setattr(recipe, "_read", lambda p, *a, **k: opened.append(p) or real(p, *a, **k))
    (tree / "spool/root").unlink()
    recipe.find()
    assert sum("cron.d" in p for p in opened) == recipe.MAX_CRONTABS


def test_a_spool_crontab_not_owned_by_its_user_is_not_read(tree):
    script = duck_sh(tree)
    tab = user_crontab(tree, CRON_LINE.format(path=script) + "\n")
    os.chown(tab, 1000, 1000)
    assert recipe.find() == []


def test_check_warns_only_about_the_same_names(tree, capsys):
    script = duck_sh(tree, names="home")
    user_crontab(tree, CRON_LINE.format(path=script) + "\n")
    recipe.warn_running(("other",))
    assert capsys.readouterr().err == ""
    recipe.warn_running(("home", "other"))
    err = capsys.readouterr().err
    assert "the same names as this updater" in err and str(script) in err


def test_the_module_prints_the_answers_for_debian_config_only(tree, monkeypatch, capsys):
    script = duck_sh(tree, names="Home.duckdns.org")
    user_crontab(tree, CRON_LINE.format(path=script) + "\n")
    assert recipe.main([]) == 0
    assert capsys.readouterr() == (f"domains = home\ntoken = {CANARY}\n", "")
    assert recipe.main(["--advice"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "delete line 1" in err and CANARY not in err
    assert recipe.main(["--token"]) == 2


def test_the_module_runs_without_any_recipe():
    """As postinst runs it on a machine without the recipe (this one's own crontabs)."""
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-m", "duckdns.recipe"],  # -I would drop PYTHONPATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (DUCK_SH.format(names="home", token=CANARY), "the whole command line of duckdns.org"),
        (
            f"https://www.duckdns.org/update?domains=home&token={CANARY}&ip=",
            "a DuckDNS update URL without a key",
        ),
    ],
    ids=["echo-line", "bare-url"],
)
def test_the_recipe_pasted_into_the_config_is_named_and_the_fix_said(line, said):
    report._secrets.clear()
    with pytest.raises(config.ConfigError) as exc:
        config.parse(f"# pasted\n{line}", "duckdns.conf")
    message = str(exc.value)
    assert message.startswith("duckdns.conf, line 2: ") and said in message
    assert "'domains = NAMES' and 'token = TOKEN'" in message
    assert CANARY not in message and "home" not in message


def test_a_users_job_is_read_only_from_that_users_home(tree):
    """pi's crontab naming root's duck.sh (or anyone else's) does not make it the answers."""
    import pwd

    user = next(p for p in pwd.getpwall() if p.pw_uid not in (0,) and p.pw_uid < 65534)
    other = tree / "root/duck.sh"
    other.write_text(DUCK_SH.format(names="rootname", token=CANARY))
    tab = tree / "spool" / user.pw_name
    tab.write_text(CRON_LINE.format(path=other) + "\n")
    os.chown(tab, user.pw_uid, user.pw_gid)
    [job] = recipe.find()
    assert job.user == user.pw_name and (job.domains, job.token) == ((), "")
