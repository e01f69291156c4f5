#!/usr/bin/env bash
# scripts/dev.sh — the one entry point for trying and testing Rivet.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

usage() {
    cat <<'EOF'
Usage: bash scripts/dev.sh COMMAND [ARGS...]

Commands:
  demo [ARGS...]   Set up the machine (packages, local Podman images, .venv),
                   then run the example pipeline:
                     .venv/bin/rivet run examples/hello.lua --input name=world [ARGS...]
  test [ARGS...]   Set up the machine plus a throw-away PostgreSQL test cluster,
                   export RIVET_TEST_DATABASE_URL, then run
                     ruff check src tests bench;  ruff format --check src tests bench;
                     mypy src;  pytest -q --cov [ARGS...]
                   All four run; the exit status is non-zero if any failed.
                   pytest collecting no tests (exit 5) counts as a failure.
                   pytest ends with a branch-coverage report of src/rivet (the
                   test process only; no threshold).
  -h, --help       Show this help.

Setup is idempotent and fast when nothing is missing; see scripts/setup.sh --help
(e.g. RIVET_SETUP_SKIP_DEBIAN=1 skips building the Debian image for demo).
EOF
}

log() { echo "dev: $*"; }

cmd_demo() {
    bash scripts/setup.sh
    exec .venv/bin/rivet run examples/hello.lua --input name=world "$@"
}

cmd_test() {
    bash scripts/setup.sh --postgres
    [ -s .venv/.rivet-pg-url ] || { log "ERROR: .venv/.rivet-pg-url missing after setup" >&2; exit 1; }
    RIVET_TEST_DATABASE_URL="$(cat .venv/.rivet-pg-url)"
    export RIVET_TEST_DATABASE_URL

    local failed=() rc
    log "ruff check src tests bench"
    .venv/bin/ruff check src tests bench || failed+=(ruff)
    log "ruff format --check src tests bench"
    .venv/bin/ruff format --check src tests bench || failed+=("ruff format")
    log "mypy src"
    .venv/bin/mypy src || failed+=(mypy)
    log "pytest -q --cov${*:+ $*}"
    rc=0
    # Coverage settings (branch, source, report) are in pyproject.toml.
    .venv/bin/pytest -q --cov --cov-report=term "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        log "ERROR: pytest collected no tests (exit 5); treating as a failure" >&2
        failed+=("pytest (no tests collected)")
    elif [ "$rc" -ne 0 ]; then
        failed+=("pytest (exit $rc)")
    fi

    if [ "${#failed[@]}" -gt 0 ]; then
        local IFS=,
        log "FAILED: ${failed[*]}" >&2
        exit 1
    fi
    log "all checks passed"
}

case "${1:-}" in
    demo) shift; cmd_demo "$@" ;;
    test) shift; cmd_test "$@" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) echo "dev: unknown command: $1" >&2; usage >&2; exit 2 ;;
esac
