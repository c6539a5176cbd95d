"""Packaging metadata. The version lives only in duckdns/__init__.py."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "duckdns" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="duckdns",
    version=VERSION,
    description="Hardened DuckDNS dynamic-DNS updater for Debian and Raspberry Pi OS",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
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
