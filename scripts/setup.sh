#!/usr/bin/env bash
# scripts/setup.sh — prepare this machine for Rivet development and CI.
#
# Idempotent: every step checks first and only acts when something is missing,
# so a re-run takes a few seconds and changes nothing.
#
# Usage: bash scripts/setup.sh [--postgres] [--help]
#   --postgres                 also start the throw-away PostgreSQL test cluster
# Environment:
#   RIVET_SETUP_POSTGRES=1     same as --postgres
#   RIVET_SETUP_SKIP_DEBIAN=1  do not build localhost/rivet/debian-git (slow)
#   RIVET_PG_DIR               test cluster data dir   (default /tmp/rivet-pg)
#   RIVET_PG_PORT              test cluster TCP port   (default 54329)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.rivet-installed"
PG_URL_FILE="$VENV/.rivet-pg-url"

# gcc and libc6-dev (libc.a): the runner compiles its static exec agent with them.
APT_PACKAGES=(podman runc catatonit busybox-static mmdebstrap postgresql lua-check gcc libc6-dev)
# Servers the HA tests start themselves (own config, free loopback port, tmp dir):
# nginx as the load balancer in front of several orchestrators, pgbouncer in
# transaction mode in front of PostgreSQL. Their packaged services are not wanted.
SERVER_PACKAGES=(nginx pgbouncer)

BUSYBOX_IMAGE="localhost/rivet/busybox:latest"
ALPINE_ALIAS="docker.io/library/alpine:latest"
DEBIAN_IMAGE="localhost/rivet/debian-git:latest"
ENTRYPOINT_IMAGE="localhost/rivet/entrypoint-test:latest"

CONTAINERS_CONF="/etc/containers/containers.conf"

PG_BIN="/usr/lib/postgresql/15/bin"
PG_DIR="${RIVET_PG_DIR:-/tmp/rivet-pg}"
PG_PORT="${RIVET_PG_PORT:-54329}"
PG_DB="rivet_test"

WITH_POSTGRES="${RIVET_SETUP_POSTGRES:-0}"
SKIP_DEBIAN="${RIVET_SETUP_SKIP_DEBIAN:-0}"

WORK_DIR=""       # temp dir for this run (logs, rootfs); removed on exit
BUSYBOX_ROOTFS="" # built lazily, shared by the busybox and entrypoint images
APT_UPDATED=0

log() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when we are root, otherwise through sudo.
as_root() {
    if is_root; then "$@"; else sudo "$@"; fi
}

# Run "$@" with its output sent to a log file; on failure show the log's tail
# and stop. Keeps successful runs down to one line per step.
# Note: set -e is off inside "$@" here, so a function passed in must return
# non-zero itself on failure (a single command or pipeline does).
quietly() {
    local what="$1"; shift
    local logfile
    logfile="$(mktemp "$WORK_DIR/log.XXXXXX")"
    if ! "$@" >"$logfile" 2>&1; then
        echo "setup: ERROR: $what failed; last lines of output:" >&2
        tail -n 40 "$logfile" >&2
        exit 1
    fi
}

cleanup() {
    remove_policy_rc
    if [ -n "$WORK_DIR" ] && [ -d "$WORK_DIR" ]; then
        rm -rf "$WORK_DIR"
    fi
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --postgres) WITH_POSTGRES=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
        shift
    done
}

# Two setups running at once (a developer's shell and a test run, or two
# engineers) would race on image builds and initdb; serialise them.
take_lock() {
    local lock="${TMPDIR:-/tmp}/rivet-setup.lock"
    exec 9>>"$lock"
    if ! flock -n 9; then
        log "waiting for another setup run to finish"
        flock -w 1800 9 || die "timed out waiting for $lock"
    fi
}

# ---------------------------------------------------------------- packages

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_install() {
    # apt-get update only once per run, and only when something is missing:
    # the package lists of a fresh machine may be empty or stale.
    if [ "$APT_UPDATED" -eq 0 ]; then
        quietly "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    quietly "apt-get install $*" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q "$@"
}

step_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "packages ok"
        return
    fi
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
    log "packages installed"
}

POLICY_RC="/usr/sbin/policy-rc.d"
POLICY_RC_OURS=0

remove_policy_rc() {
    if [ "$POLICY_RC_OURS" -eq 1 ]; then
        as_root rm -f "$POLICY_RC"
        POLICY_RC_OURS=0
    fi
}

# nginx and pgbouncer would start their packaged services on ports 80 and 6432 from
# their postinst scripts; the tests run their own instances instead. Debian's
# policy-rc.d hook (exit 101: "action forbidden") stops invoke-rc.d from starting
# them during the install; one already there (container images ship one) is kept.
step_server_packages() {
    local missing=() p
    for p in "${SERVER_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "server packages ok"
        return
    fi
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\n# rivet scripts/setup.sh: no service starts during this install\nexit 101\n' \
            | as_root tee "$POLICY_RC" >/dev/null
        as_root chmod 0755 "$POLICY_RC"
        POLICY_RC_OURS=1
    fi
    log "installing ${missing[*]} (their packaged services are not started)"
    apt_install "${missing[@]}"
    remove_policy_rc
    # Under systemd the units may still be enabled; keep them from starting at boot.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now nginx pgbouncer >/dev/null 2>&1 || true
    fi
    log "server packages installed"
}

# ------------------------------------------------------------------ images

# A minimal rootfs: static busybox plus its applets, enough to run shell
# commands. No registry is reachable, so every image must be made locally.
make_busybox_rootfs() {
    [ -n "$BUSYBOX_ROOTFS" ] && return
    local root="$WORK_DIR/rootfs" applet
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/workspace" "$root/root"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$root/bin/$applet"
    done
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
    BUSYBOX_ROOTFS="$root"
}

# import_rootfs IMAGE CHANGE — tar the busybox rootfs into a podman image.
import_rootfs() {
    tar --numeric-owner --owner=0 --group=0 -C "$BUSYBOX_ROOTFS" -c . \
        | podman import --change "$2" - "$1"
}

step_busybox_image() {
    if podman image exists "$BUSYBOX_IMAGE"; then
        log "image $BUSYBOX_IMAGE ok"
    else
        make_busybox_rootfs
        quietly "import $BUSYBOX_IMAGE" import_rootfs "$BUSYBOX_IMAGE" 'CMD ["/bin/sh"]'
        log "image $BUSYBOX_IMAGE built"
    fi
    # Pipelines and tests say "alpine:latest"; let that name resolve locally.
    if ! podman image exists "$ALPINE_ALIAS"; then
        podman tag "$BUSYBOX_IMAGE" "$ALPINE_ALIAS"
        log "tagged $ALPINE_ALIAS"
    fi
}

# An image with its own ENTRYPOINT, so tests can prove the runner overrides it.
step_entrypoint_image() {
    if podman image exists "$ENTRYPOINT_IMAGE"; then
        log "image $ENTRYPOINT_IMAGE ok"
        return
    fi
    make_busybox_rootfs
    quietly "import $ENTRYPOINT_IMAGE" \
        import_rootfs "$ENTRYPOINT_IMAGE" 'ENTRYPOINT ["/bin/false"]'
    log "image $ENTRYPOINT_IMAGE built"
}

build_debian_image() {
    mmdebstrap --variant=apt --include=git,ca-certificates,python3 --format=tar bookworm - \
        | podman import --change 'CMD ["/bin/sh"]' - "$DEBIAN_IMAGE"
}

# A real Debian with git and python3, for tests that clone repositories.
step_debian_image() {
    if [ "$SKIP_DEBIAN" = 1 ]; then
        log "image $DEBIAN_IMAGE skipped (RIVET_SETUP_SKIP_DEBIAN=1)"
        return
    fi
    if podman image exists "$DEBIAN_IMAGE"; then
        log "image $DEBIAN_IMAGE ok"
        return
    fi
    log "building $DEBIAN_IMAGE with mmdebstrap (about a minute)"
    quietly "build $DEBIAN_IMAGE" build_debian_image
    log "image $DEBIAN_IMAGE built"
}

# ------------------------------------------------------------------ podman

trial_run() {
    podman run --rm "$BUSYBOX_IMAGE" true
}

write_containers_conf() {
    local new
    new="$(mktemp "$WORK_DIR/containers.conf.XXXXXX")"
    cat >"$new" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
EOF
    if [ -f "$CONTAINERS_CONF" ] && ! cmp -s "$new" "$CONTAINERS_CONF"; then
        local bak="$CONTAINERS_CONF.rivet-bak"
        # Never overwrite an earlier backup: it holds the original file.
        [ -e "$bak" ] && bak="$bak.$(date +%Y%m%d%H%M%S)"
        as_root cp -p "$CONTAINERS_CONF" "$bak"
        log "backed up $CONTAINERS_CONF to $bak"
    fi
    as_root mkdir -p "$(dirname "$CONTAINERS_CONF")"
    as_root install -m 0644 "$new" "$CONTAINERS_CONF"
}

# Some sandboxes (like CI here) lack CAP_SYS_RESOURCE and hybrid cgroups, so
# crun fails on setrlimit/cgroups. Only when a trial run fails do we switch to
# runc with ulimits no higher than the current ones; normal machines are left
# untouched.
step_podman() {
    local out
    if out="$(trial_run 2>&1)"; then
        log "podman ok"
        return
    fi
    log "podman trial run failed; writing $CONTAINERS_CONF (runc, lower ulimits)"
    printf '%s\n' "$out" | sed 's/^/setup:   /' | tail -n 5
    write_containers_conf
    if ! out="$(trial_run 2>&1)"; then
        echo "setup: ERROR: 'podman run --rm $BUSYBOX_IMAGE true' still fails after" \
            "writing $CONTAINERS_CONF:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    log "podman ok (after writing $CONTAINERS_CONF)"
}

# Rootful Podman's --userns=auto (the runner policy's default container.userns)
# hands out ids from the ranges of the user "containers"; without them every job's
# first container fails to start. The range is the one Podman's documentation
# suggests: above every ordinary uid, so it collides with no account.
SUBID_LINE="containers:2147483647:2147483648"

step_subids() {
    local file out missing=0
    for file in /etc/subuid /etc/subgid; do
        if ! grep -qs '^containers:' "$file"; then
            echo "$SUBID_LINE" | as_root tee -a "$file" >/dev/null
            missing=1
        fi
    done
    if [ "$missing" -eq 1 ]; then
        log "subordinate ids for containers added to /etc/subuid and /etc/subgid"
    else
        log "subordinate ids ok"
    fi
    # A trial start in a private user namespace, as a root runner does it (rootless
    # Podman needs nothing from Rivet: its containers are in the user's namespace).
    is_root || return 0
    if ! out="$(podman run --rm --pull never --userns=auto:size=65536 "$BUSYBOX_IMAGE" true 2>&1)"; then
        echo "setup: ERROR: podman run --userns=auto fails:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
}

# -------------------------------------------------------------- virtualenv

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

step_venv() {
    local py
    py="$(command -v python3 || true)"
    [ -n "$py" ] || die "python3 not found; Rivet needs Python 3.11+"
    python_ok "$py" || die "python3 is $("$py" -V 2>&1); Rivet needs Python 3.11+"

    # A venv whose interpreter vanished (e.g. a removed pyenv version) is useless.
    if [ -d "$VENV" ] && ! python_ok "$VENV/bin/python"; then
        log "existing .venv is broken or too old; recreating"
        rm -rf "$VENV"
    fi
    if [ ! -d "$VENV" ]; then
        # Debian's own python3 cannot make venvs without python3-venv.
        if [ "$py" = /usr/bin/python3 ] && ! pkg_installed python3-venv; then
            apt_install python3-venv
        fi
        quietly "python3 -m venv .venv" "$py" -m venv "$VENV"
        log "created .venv with $("$py" -V 2>&1)"
    fi

    [ -f "$REPO_ROOT/pyproject.toml" ] || die "pyproject.toml missing in $REPO_ROOT"
    # Reinstall only when pyproject.toml changed since the last install, so
    # re-runs are fast. Editable install: source edits need no reinstall.
    if [ ! -f "$STAMP" ] || [ "$REPO_ROOT/pyproject.toml" -nt "$STAMP" ]; then
        log "installing rivet and dev tools into .venv"
        quietly "pip install -e .[dev]" \
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${REPO_ROOT}[dev]"
        touch "$STAMP"
        log "venv installed"
    else
        log "venv ok"
    fi
}

# ------------------------------------------------------------- exec agent

# The runner compiles its exec agent (a static C program run inside each job
# container) on first use and caches it; building it here finds a broken compiler
# now rather than as a slower fallback in every job.
step_agent() {
    local out
    if ! out="$("$VENV/bin/python" -m rivet.engine.agent.build 2>&1)"; then
        echo "setup: ERROR: $out" >&2
        exit 1
    fi
    log "exec agent ok ($out)"
}

# ---------------------------------------------------------------- postgres

# Run a PostgreSQL server binary as the postgres OS user (it refuses to run as
# root); a non-root user runs it as themselves. cd /tmp so the postgres user
# never needs access to the caller's working directory.
as_pg() {
    if is_root; then
        (cd /tmp && runuser -u postgres -- "$@")
    else
        (cd /tmp && "$@")
    fi
}

pg_running() {
    [ -f "$PG_DIR/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1
}

# (Called under quietly's "if", where set -e is off: hence the explicit returns.)
pg_init() {
    # Pre-create the data dir owned by postgres: its parent (RIVET_PG_DIR may
    # be anywhere) need not be writable by the postgres user.
    if is_root; then
        install -d -o postgres -g postgres -m 0700 "$PG_DIR" || return 1
    fi
    as_pg "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale || return 1
    # Throw-away test data: durability is not needed, speed is.
    as_pg sh -c "cat >>'$PG_DIR/postgresql.conf'" <<EOF

# added by rivet scripts/setup.sh (throw-away test cluster)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '/tmp'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# 9>&-: the server outlives this script and must not inherit (and so hold
# forever) the setup lock on fd 9.
pg_start() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start 9>&-
}

psql_test() {
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

step_postgres() {
    [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb missing (package postgresql 15)"
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        if [ -e "$PG_DIR" ] && [ -n "$(ls -A "$PG_DIR" 2>/dev/null)" ]; then
            die "$PG_DIR exists but is not a PostgreSQL data dir; remove it or set RIVET_PG_DIR"
        fi
        quietly "initdb $PG_DIR" pg_init
        log "postgres cluster initialised in $PG_DIR"
    fi
    if pg_running; then
        log "postgres running on 127.0.0.1:$PG_PORT"
    else
        quietly "start postgres (log: $PG_DIR/server.log)" pg_start
        log "postgres started on 127.0.0.1:$PG_PORT"
    fi
    if [ "$(psql_test -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
        psql_test -d postgres -c "CREATE DATABASE $PG_DB" >/dev/null
        log "created database $PG_DB"
    fi
    psql_test -d "$PG_DB" -tAc 'SELECT 1' >/dev/null \
        || die "cannot connect to $PG_DB on 127.0.0.1:$PG_PORT"
    local url="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$PG_DB"
    # The test runner (scripts/dev.sh test) reads the URL from here.
    if [ "$(cat "$PG_URL_FILE" 2>/dev/null)" != "$url" ]; then
        printf '%s\n' "$url" >"$PG_URL_FILE"
    fi
    log "postgres url $url"
}

# -------------------------------------------------------------------- main

main() {
    parse_args "$@"
    local start=$SECONDS
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rivet-setup.XXXXXX")"
    trap cleanup EXIT
    take_lock

    step_packages
    step_server_packages
    step_busybox_image   # first: the podman trial run needs a local image
    step_podman
    step_subids
    step_entrypoint_image
    step_debian_image
    step_venv
    step_agent
    if [ "$WITH_POSTGRES" = 1 ]; then
        step_postgres
    fi
    log "done in $((SECONDS - start))s"
}

main "$@"
