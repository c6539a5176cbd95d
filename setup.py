"""Packaging metadata. The version lives only in duckdns/__init__.py."""

import re
from pathlib import Path

from setuptools import setup
from setuptools.command.install_scripts import install_scripts

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "duckdns" / "__init__.py").read_text(), re.M
).group(1)


LONG_DESCRIPTION = """\
duckdns keeps your free NAME.duckdns.org name pointed at this machine's
changing IPv4 (and optionally IPv6) address. It asks for the DuckDNS token
once through debconf and then runs every minute from a locked-down systemd
timer, as a throw-away dynamic user, sending an update only when the
address changed. Change the settings with "dpkg-reconfigure duckdns".
"""


class PlainEntryScripts(install_scripts):
    """Write the console script as a plain wrapper.

    setuptools' generated entry-point script (the one `setup.py install`, and so
    pybuild, writes) imports importlib.metadata and looks the entry point up at
    every start: about 20 ms of CPU per run, on a timer that fires 1,440 times a
    day (measured with scripts/bench). The plain wrapper does the same thing
    directly. pip-built wheels are unaffected (pip writes its own light scripts).
    """

    TEMPLATE = "import sys\n\nfrom {module} import {func}\n\nsys.exit({func}())\n"

    def run(self) -> None:
        super().run()
        for spec in self.distribution.entry_points["console_scripts"]:
            name, _, target = (part.strip() for part in spec.partition("="))
            module, _, func = target.partition(":")
            path = Path(self.install_dir) / name
            shebang = path.read_text().splitlines()[0]
            path.write_text(shebang + "\n" + self.TEMPLATE.format(module=module, func=func))


setup(
    cmdclass={"install_scripts": PlainEntryScripts},
    name="duckdns",
    version=VERSION,
    # The Debian package's Description: stdeb keeps 60 characters of the synopsis
    # and the first 20 lines of the long description; lintian wants <= 80 columns.
    description="hardened DuckDNS dynamic DNS updater (systemd timer)",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/plain",
    author="duckdns maintainers",
    author_email="maintainers@users.noreply.r-seed-e1416756.example",
    url="https://www.duckdns.org/",
    license="MIT",
    packages=["duckdns"],
    python_requires=">=3.11",
    install_requires=["requests"],
    entry_points={"console_scripts": ["duckdns = duckdns.cli:main"]},
    classifiers=[
        "Environment :: No Input/Output (Daemon)",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: Name Service (DNS)",
    ],
)
