#!/bin/sh
# Install (or upgrade in place) Passerelle as a systemd service on Debian /
# Raspberry Pi OS. Run as root:  sudo sh packaging/install.sh
#
# What it does, in order: checks Python, creates the `passerelle` system user
# (systemd-sysusers), creates the data home /var/lib/passerelle, creates a
# virtual environment in PREFIX/venv and pip-installs Passerelle into it,
# installs /usr/local/bin/passerelle and the systemd unit, then enables and
# (re)starts the service. Running it again upgrades in place; data is kept.
#
# Options:
#   --root DIR      install into DIR instead of / (a staging root, for tests and
#                   image building). The venv then records DIR in its paths, so
#                   it only runs from DIR: build real images inside a chroot.
#   --prefix DIR    where the program goes (default /opt/passerelle)
#   --from SRC      a wheel file or a source directory to install (default: the
#                   source tree this script sits in)
#   --wheels DIR    install without network: take every package from DIR (a
#                   folder of wheels made with `pip wheel` or `pip download`)
#   --python PATH   interpreter for the venv (default python3), 3.11 or newer
#   --no-enable     do not enable nor start the service
#   -h, --help      show this help
set -eu

PROG=install.sh
ROOT=/
PREFIX=/opt/passerelle
FROM=
WHEELS=
PYTHON=python3
ENABLE=yes
DATA=/var/lib/passerelle
USER_NAME=passerelle

HERE=$(cd "$(dirname "$0")" && pwd)
SRC_TREE=$(dirname "$HERE")

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

say() {
    echo "$PROG: $*"
}

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

need_arg() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then
        die "option $1 needs a value (see --help)"
    fi
}

while [ $# -gt 0 ]; do
    case $1 in
        --root) need_arg "$@"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --from) need_arg "$@"; FROM=$2; shift 2 ;;
        --from=*) FROM=${1#*=}; shift ;;
        --wheels) need_arg "$@"; WHEELS=$2; shift 2 ;;
        --wheels=*) WHEELS=${1#*=}; shift ;;
        --python) need_arg "$@"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --no-enable) ENABLE=no; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

# --- Check the options -----------------------------------------------------------

case $PREFIX in
    /*) ;;
    *) die "--prefix must be an absolute path, got '$PREFIX'" ;;
esac
case $PREFIX in
    *[!A-Za-z0-9/._+-]*) die "--prefix may only contain letters, digits and / . _ + -, got '$PREFIX'" ;;
esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || die "--prefix cannot be /"

[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
if [ "$ROOT" = / ]; then
    R=
else
    R=$ROOT
fi

if [ -z "$FROM" ]; then
    FROM=$SRC_TREE
    [ -f "$FROM/setup.cfg" ] || die "no source tree around $HERE; give a wheel with --from FILE.whl"
fi
[ -e "$FROM" ] || die "--from $FROM does not exist"
case $FROM in
    /*) ;;
    *) FROM=$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM") ;;
esac
if [ -d "$FROM" ]; then
    { [ -f "$FROM/setup.cfg" ] || [ -f "$FROM/pyproject.toml" ]; } \
        || die "--from $FROM is a folder without setup.cfg or pyproject.toml"
else
    case $FROM in
        *.whl) ;;
        *) die "--from must be a wheel (.whl) or a source folder, got '$FROM'" ;;
    esac
fi
if [ -n "$WHEELS" ]; then
    [ -d "$WHEELS" ] || die "--wheels $WHEELS is not a directory"
fi

for f in passerelle.service passerelle.sysusers; do
    [ -f "$HERE/$f" ] || die "$HERE/$f is missing; run the script from the Passerelle source tree"
done

if [ -z "$R" ] && [ "$(id -u)" -ne 0 ]; then
    die "installing into / needs root: run it with sudo"
fi

# --- Python ------------------------------------------------------------------------

command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found; install it with: sudo apt-get install python3 python3-venv"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Passerelle needs Python 3.11 or newer, $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())')"
# Debian ships `venv` without `ensurepip` unless python3-venv is installed.
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "the Python venv module is missing; install it with: sudo apt-get install python3-venv"
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# --- System user -------------------------------------------------------------------

install -d -m 0755 "$R/usr/lib/sysusers.d" "$R/etc"
install -m 0644 "$HERE/passerelle.sysusers" "$R/usr/lib/sysusers.d/passerelle.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
    # A bare file name is looked up in ROOT's sysusers.d folders (as Debian's
    # packages do), which works the same on every systemd version.
    if [ -n "$R" ]; then
        systemd-sysusers --root "$R" passerelle.conf || die "systemd-sysusers could not create the user $USER_NAME in $R"
    else
        systemd-sysusers passerelle.conf || die "systemd-sysusers could not create the user $USER_NAME"
    fi
elif [ -z "$R" ]; then
    if ! getent passwd "$USER_NAME" >/dev/null; then
        command -v adduser >/dev/null 2>&1 || die "neither systemd-sysusers nor adduser found; install with: sudo apt-get install adduser"
        adduser --system --group --home "$DATA" --no-create-home --shell /usr/sbin/nologin \
            --gecos "Passerelle learning content server" "$USER_NAME" >/dev/null \
            || die "adduser could not create the user $USER_NAME"
    fi
else
    die "systemd-sysusers is needed to create the user in $R; install with: sudo apt-get install systemd"
fi

# Numeric ids from ROOT's own /etc/passwd: a staging root's ids are not the host's.
ENTRY=$(grep "^$USER_NAME:" "$R/etc/passwd" 2>/dev/null || true)
PW_UID=$(echo "$ENTRY" | cut -d: -f3)
PW_GID=$(echo "$ENTRY" | cut -d: -f4)

# --- Data home ---------------------------------------------------------------------

install -d -m 0755 "$R/var/lib"
[ -d "$R$DATA" ] || mkdir "$R$DATA"
chmod 0750 "$R$DATA"
if [ -z "$PW_UID" ] || [ -z "$PW_GID" ]; then
    say "warning: no user $USER_NAME in $R/etc/passwd; $R$DATA left owned by $(id -un)"
elif [ "$(id -u)" -ne 0 ]; then
    say "warning: not root, so $R$DATA is not given to $USER_NAME ($PW_UID:$PW_GID)"
else
    # Also give back files that an administrator created as root (say, by running
    # `passerelle migrate` without sudo -u passerelle): the service must write them.
    chown "$PW_UID:$PW_GID" "$R$DATA"
    find "$R$DATA" \( ! -user "$PW_UID" -o ! -group "$PW_GID" \) -exec chown -h "$PW_UID:$PW_GID" {} +
fi

# --- Program: a virtual environment in PREFIX/venv ---------------------------------

VENV=$R$PREFIX/venv
VENV_VERSION=
if [ -x "$VENV/bin/python" ]; then
    VENV_VERSION=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
fi
if [ "$VENV_VERSION" = "$PY_VERSION" ]; then
    say "upgrading the virtual environment $VENV"
else
    # New, or made by another Python (say, after an OS upgrade): make it afresh.
    say "creating the virtual environment $VENV (Python $PY_VERSION)"
    install -d -m 0755 "$R$PREFIX"
    "$PYTHON" -m venv --clear "$VENV" || die "could not create the virtual environment $VENV"
fi

PIP_OPTS="--disable-pip-version-check --no-input --quiet"
if [ -n "$WHEELS" ]; then
    PIP_OPTS="$PIP_OPTS --no-index --find-links $WHEELS"
fi
say "installing $FROM"
# shellcheck disable=SC2086 # PIP_OPTS is a list of words
"$VENV/bin/python" -m pip install $PIP_OPTS "$FROM" \
    || die "pip could not install $FROM into $VENV (see the messages above)"
# The same version number may stand for new code (a rebuilt wheel, an edited tree).
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install $PIP_OPTS --force-reinstall --no-deps "$FROM" \
    || die "pip could not reinstall $FROM into $VENV (see the messages above)"
VERSION=$("$VENV/bin/passerelle" --version 2>/dev/null) \
    || die "$VENV/bin/passerelle does not run after the install"

# `passerelle` on the PATH, with the service's data home as the default home.
install -d -m 0755 "$R/usr/local/bin"
cat >"$R/usr/local/bin/passerelle.tmp" <<EOF
#!/bin/sh
# Installed by Passerelle's install.sh: the service's data home unless told otherwise.
# Run commands as the service's user:  sudo -u $USER_NAME passerelle backup
: "\${PASSERELLE_HOME:=$DATA}"
export PASSERELLE_HOME
exec $PREFIX/venv/bin/passerelle "\$@"
EOF
chmod 0755 "$R/usr/local/bin/passerelle.tmp"
mv -f "$R/usr/local/bin/passerelle.tmp" "$R/usr/local/bin/passerelle"

if [ -f "$SRC_TREE/docs/deployment.md" ]; then
    install -d -m 0755 "$R$PREFIX/share/doc/passerelle"
    install -m 0644 "$SRC_TREE/docs/deployment.md" "$R$PREFIX/share/doc/passerelle/deployment.md"
fi

# --- systemd unit ------------------------------------------------------------------

UNIT=$R/etc/systemd/system/passerelle.service
install -d -m 0755 "$R/etc/systemd/system"
sed "s#/opt/passerelle#$PREFIX#g" "$HERE/passerelle.service" >"$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv -f "$UNIT.tmp" "$UNIT"
say "installed $VERSION in $R$PREFIX and the unit $UNIT"

if [ "$ENABLE" = no ]; then
    say "not enabling the service (--no-enable); later: sudo systemctl enable --now passerelle"
    exit 0
fi

command -v systemctl >/dev/null 2>&1 || die "systemctl not found: is this a systemd system? Use --no-enable"
if [ -n "$R" ]; then
    # Offline: only creates the multi-user.target.wants link inside the root.
    systemctl --root "$R" enable passerelle.service >/dev/null 2>&1 \
        || die "systemctl --root $R could not enable passerelle.service"
    say "enabled passerelle.service in $R; it starts when that system boots"
    exit 0
fi
if [ ! -d /run/systemd/system ]; then
    # A chroot or container without systemd running: enable for the next boot.
    systemctl enable passerelle.service >/dev/null 2>&1 || die "systemctl could not enable passerelle.service"
    say "enabled passerelle.service; systemd is not running here, so it starts at the next boot"
    exit 0
fi
systemctl daemon-reload || die "systemctl daemon-reload failed"
systemctl enable passerelle.service >/dev/null 2>&1 || die "systemctl could not enable passerelle.service"
# restart, not start: an upgrade must replace the running program.
systemctl restart passerelle.service || die "passerelle did not start; see: journalctl -u passerelle -n 50"

# Where the service listens, as its settings say (HOME/passerelle.toml may change it).
LISTEN=$(PASSERELLE_HOME=$DATA "$VENV/bin/passerelle" config show --json 2>/dev/null \
    | "$VENV/bin/python" -c 'import json, sys; s = json.load(sys.stdin); print(s["host"]["value"], s["port"]["value"])' 2>/dev/null) \
    || LISTEN="0.0.0.0 8080"
HOST=${LISTEN% *}
PORT=${LISTEN#* }
if ! "$VENV/bin/python" - "$HOST" "$PORT" <<'EOF'
import sys, time, urllib.request
host, port = sys.argv[1:3]
if host in ("", "0.0.0.0", "::"):
    host = "127.0.0.1"
elif ":" in host:
    host = f"[{host}]"
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/v1/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
then
    die "passerelle started but does not answer on port $PORT; see: journalctl -u passerelle -n 50"
fi
case $HOST in
    ""|0.0.0.0|::) ADDRESS=$(hostname -I 2>/dev/null | awk '{print $1}') ;;
    *) ADDRESS=$HOST ;;
esac
[ -n "$ADDRESS" ] || ADDRESS=$(hostname).local
say "passerelle is running. Tablets on this network can open: http://$ADDRESS:$PORT/"
