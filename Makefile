# Passerelle: the two commands of the quick start are `make run` and `make test`.
# Everything else here is a helper for developers.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
# Root installs system packages directly; anyone else goes through sudo.
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM ?= /usr/bin/chromium
# setuptools warns that data folders (templates, static, translations, bundled packs)
# look like packages; they ship as package data (a test checks the wheel), so the
# warning is noise in the quick start.
PIP_QUIET := PYTHONWARNINGS=ignore::UserWarning
# Lint rules are named here (ruff cannot read setup.cfg): pyflakes, errors, imports,
# bugbear, pyupgrade.
RUFF   := $(BIN)/ruff check --select E4,E7,E9,F,I,B,UP,BLE,PLW1510 --target-version py311

.PHONY: run test lint docs translations browser packaging-tools postgresql deb deb-lock image image-check image-boot image-tools clean

## run: install into .venv, load the bundled sample packs once, serve on port $(PORT)
run: $(VENV)/.installed
	$(BIN)/passerelle content import --bundled
	$(BIN)/passerelle serve --port $(PORT)

## test: the whole suite, lint included (installs Debian's chromium and postgresql if missing)
test: $(VENV)/.installed-test browser packaging-tools postgresql
	$(RUFF) .
	$(BIN)/pytest

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_QUIET) $(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_QUIET) $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The browser tests drive Debian's Chromium through Playwright's executable_path:
# no browser is ever downloaded by a test tool.
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The packaging tests check the hotspot's files with the tools that read them on a box
# (dnsmasq, nft, nmcli), the Debian package with lintian, and install and boot it on a
# minimal Debian (mmdebstrap, systemd-nspawn): Debian's packages, installed once.
packaging-tools:
	@test -x /usr/sbin/dnsmasq && test -x /usr/sbin/nft && command -v lintian >/dev/null \
		&& command -v nmcli >/dev/null && command -v mmdebstrap >/dev/null \
		&& command -v systemd-nspawn >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		  --no-install-recommends dnsmasq-base nftables lintian network-manager mmdebstrap \
		  systemd-container; }

# The hub's PostgreSQL engine is tested on a real PostgreSQL: the suite starts a throwaway
# cluster of its own with Debian's initdb and pg_ctl (the package's own cluster is not used).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		  --no-install-recommends postgresql; }

## deb: the Debian packages passerelle (ARCH=amd64 or arm64) and passerelle-hotspot, in dist/
ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
deb: $(VENV)/.installed-test
	$(BIN)/python packaging/deb/build.py --arch $(ARCH) --out dist

## image: the Raspberry Pi image (arm64) in dist/, from the packages (needs root; the first
## build takes a quarter of an hour: Debian's arm64 packages configured under qemu)
image: image-tools
	$(MAKE) deb ARCH=arm64
	$(SUDO) $(PYTHON) packaging/image/build.py --debs dist --out dist

## image-check: inspect the built image offline (partitions, sizes, units, no keys)
image-check: image-tools
	$(PYTHON) packaging/image/inspect.py dist/passerelle-raspi-arm64.img

## image-boot: boot the built image twice under qemu-system-aarch64 and time it (5 to 40
## minutes on a 2-core machine, with its load; not in `make test`, see docs/deployment.md)
image-boot: image-tools
	@command -v qemu-system-aarch64 >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		  --no-install-recommends qemu-system-arm; }
	$(PYTHON) packaging/image/boot_check.py dist/passerelle-raspi-arm64.img

image-tools:
	@command -v mmdebstrap >/dev/null && command -v bmaptool >/dev/null && command -v mcopy >/dev/null \
		&& test -x /usr/bin/qemu-aarch64-static || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		  --no-install-recommends mmdebstrap qemu-user-static binfmt-support bmap-tools mtools \
		  dosfstools e2fsprogs fdisk xz-utils; }
	@test -e /proc/sys/fs/binfmt_misc/qemu-aarch64 || $(SUDO) update-binfmts --enable qemu-aarch64

## deb-lock: pin the dependencies' wheels (both architectures) after changing install_requires
deb-lock: $(VENV)/.installed
	$(BIN)/python packaging/deb/lock.py

lint: $(VENV)/.installed-test
	$(RUFF) .

## docs: regenerate docs/settings.md and server/schema.sql from the code
docs: $(VENV)/.installed
	$(BIN)/python -m passerelle.server.docs

## translations: extract strings, update the catalogues, compile them
translations: $(VENV)/.installed
	$(BIN)/pybabel -q extract -F kiosk/translations/babel.cfg -k _l -k lazy_gettext --no-location \
		--sort-output --project=Passerelle -o kiosk/translations/messages.pot server kiosk
	$(BIN)/pybabel -q update -i kiosk/translations/messages.pot -d kiosk/translations --no-fuzzy-matching
	$(BIN)/pybabel -q compile -d kiosk/translations

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache test-artifacts
