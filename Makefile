# duckdns — build and test entry points.
# Every step runs Debian's own Python (the one the package runs under), never a
# pyenv/venv python3 that may come first on PATH.
PY := /usr/bin/python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
# The version is the top entry of debian/changelog (docs/releasing.md). Its first
# line's form, "duckdns (VERSION-REVISION) ...", is fixed by Debian Policy 4.4, so it
# is read here with cut: dpkg-parsechangelog (dpkg-dev) gives the same, but `make deb`
# installs dpkg-dev only after this is read. duckdns/__init__.py must say the same
# (the deb target checks it).
DEB_VERSION := $(shell head -n 1 debian/changelog | cut -d ' ' -f 2 | tr -d '()')
VERSION := $(shell echo '$(DEB_VERSION)' | sed 's/-[^-]*$$//')
DEB_REVISION := $(shell echo '$(DEB_VERSION)' | sed 's/.*-//')
# Reproducible builds: every timestamp a build writes is the changelog entry's date.
SOURCE_DATE_EPOCH = $(shell dpkg-parsechangelog -l debian/changelog -S Timestamp 2>/dev/null)
export SOURCE_DATE_EPOCH

# What `make deb` needs on a fresh Debian 12 or 13 machine (the same list on both:
# tests/system/test_releases.py builds with it in a Debian 13 root).
BUILD_DEPS := python3 python3-setuptools python3-stdeb python3-all python3-requests \
	debhelper dh-python po-debconf fakeroot dpkg-dev build-essential
# The type checker (mypy.ini) and the stubs it reads requests' types from (python3-typeshed's
# types-requests; dnspython and Apprise ship their own). tests/unit/test_pep484.py runs it too.
TYPE_DEPS := mypy python3-typeshed
# What `make test` needs on top of that.
TEST_DEPS := python3-pytest python3-pytest-xdist python3-hypothesis python3-debian python3-dnspython python3-trustme python3-prometheus-client openssl ca-certificates lintian systemd \
	debootstrap systemd-container qemu-user-static binfmt-support piuparts tmux \
	faketime reprepro gnupg iproute2 curl util-linux zstd rsync restic borgbackup \
	mmdebstrap arch-test qemu-system-arm e2fsprogs cpio time apprise python3-aiosmtpd \
	$(TYPE_DEPS)

.PHONY: all deb repo test unit deps build-deps test-deps lint clean

all: deb

# Install only what is missing, so a warm machine does not touch apt at all.
define apt_ensure
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing:" $$missing; \
		$(SUDO) apt-get update -q && $(APT_INSTALL) $$missing; \
	fi
endef

build-deps:
	$(call apt_ensure,$(BUILD_DEPS))

test-deps: build-deps
	$(call apt_ensure,$(TEST_DEPS))

deps: test-deps

# pytest's exit 5 ("no tests ran") must never pass as success.
define run_pytest
	@rc=0; $(PY) -m pytest $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi; exit $$rc
endef

# Two workers (pytest-xdist): the system tests in order on one (they share booted
# containers, cached roots and background builds), the package tests, the unit tests and
# the other release's unit-test run on the other (tests/conftest.py groups them).
test: test-deps deb
	$(call run_pytest,-n 2 --dist loadgroup tests)

unit: test-deps
	$(call run_pytest,-n 2 tests/unit)

# ruff is not packaged in Debian 12 (it is in 13): a pinned copy from PyPI in a
# venv of Debian's Python, made on first use. shellcheck and mypy are Debian's; mypy
# reads mypy.ini (strict on duckdns/) and runs under Debian's Python, whose modules it checks.
RUFF_VERSION := 0.17.6
LINT_VENV := .venv-lint
RUFF := $(LINT_VENV)/bin/ruff
PY_SOURCES := duckdns tests scripts/bench setup.py
SH_SOURCES := scripts/make-repo hooks/certbot-auth-hook hooks/certbot-cleanup-hook \
	debian/config debian/preinst debian/postinst debian/prerm debian/postrm \
	debian/network/NetworkManager/90-duckdns debian/network/networkd-dispatcher/90-duckdns \
	debian/network/ifupdown/duckdns \
	debian/tests/command-line debian/tests/service

$(RUFF):
	$(call apt_ensure,python3-venv)
	$(PY) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install -q ruff==$(RUFF_VERSION)

lint: $(RUFF)
	$(call apt_ensure,shellcheck $(TYPE_DEPS))
	$(RUFF) check $(PY_SOURCES)
	$(RUFF) format --check $(PY_SOURCES)
	shellcheck -e SC1091 $(SH_SOURCES)
	$(PY) -m mypy

# The Debian package, built by stdeb from setup.py (options in stdeb.cfg, the
# rest of debian/ from the repository; see docs/packaging.md). PATH is reset so
# pybuild finds Debian's python3.X, not a pyenv/venv one (--install-layout).
DEB := dist/duckdns_$(VERSION)-$(DEB_REVISION)_all.deb
DEB_ENV := env PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
DEB_SOURCES := setup.py stdeb.cfg MANIFEST.in README.md \
	$(shell find duckdns debian man hooks -type f ! -name '*.pyc' 2>/dev/null)

deb: build-deps $(DEB)

# stdeb's sdist_dsc generates debian/ and builds the source package; two things
# it has no option for are added to its tree, then the source package is built
# again and the binary one built from it (what stdeb's bdist_deb would run):
# the dh_installsystemd override (debian/rules-override.mk) and the source
# package's lintian overrides (debian/source/ cannot be in this repository).
DEB_TREE := deb_dist/duckdns-$(VERSION)

$(DEB): $(DEB_SOURCES)
	@v=$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' duckdns/__init__.py); \
	if [ "$$v" != "$(VERSION)" ]; then \
		echo "duckdns/__init__.py says $$v, debian/changelog $(VERSION): make them agree" >&2; \
		exit 1; fi
	rm -rf deb_dist duckdns.egg-info duckdns-$(VERSION).tar.gz
	$(DEB_ENV) $(PY) setup.py --command-packages=stdeb.command \
		sdist_dsc --dist-dir=deb_dist --compat=13 --debian-version=$(DEB_REVISION)
	rm -f duckdns-$(VERSION).tar.gz
	cat debian/rules-override.mk >>$(DEB_TREE)/debian/rules
	cp debian/source-lintian-overrides $(DEB_TREE)/debian/source/lintian-overrides
	cp debian/changelog $(DEB_TREE)/debian/changelog
	rm -f $(DEB_TREE)/debian/watch
	rm -rf $(DEB_TREE)/debian/tests && cp -r debian/tests $(DEB_TREE)/debian/tests
	find $(DEB_TREE) -exec touch -h -d @$(SOURCE_DATE_EPOCH) {} +
	cd $(DEB_TREE) && $(DEB_ENV) dpkg-buildpackage -S -sa -us -uc
	cd $(DEB_TREE) && $(DEB_ENV) dpkg-buildpackage -rfakeroot -b -us -uc
	mkdir -p dist
	cd deb_dist && cp -p duckdns_$(VERSION)-$(DEB_REVISION)_all.deb \
		duckdns_$(VERSION)-$(DEB_REVISION).dsc duckdns_$(VERSION).orig.tar.gz \
		duckdns_$(VERSION)-$(DEB_REVISION).debian.tar.* \
		duckdns_$(VERSION)-$(DEB_REVISION)_*.changes \
		duckdns_$(VERSION)-$(DEB_REVISION)_*.buildinfo ../dist/
	touch $@

# A signed apt repository in dist/repo (see scripts/make-repo and README, Fleet):
#   make repo REPO_KEY_ID=<fingerprint>   or   make repo REPO_KEY_FILE=key.asc
repo: deb
	$(call apt_ensure,reprepro gnupg)
	REPO_KEY_ID="$(REPO_KEY_ID)" REPO_KEY_FILE="$(REPO_KEY_FILE)" scripts/make-repo $(DEB)

clean:
	rm -rf build deb_dist dist *.egg-info .pytest_cache .venv-lint .mypy_cache
