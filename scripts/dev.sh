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
                   Without ARGS, then once more the orchestrator API tests on
                   PostgreSQL through a pgbouncer in transaction mode
                   (RIVET_TEST_THROUGH_PGBOUNCER=1; PGBOUNCER_TESTS in this
                   script lists the modules).
                   All run; the exit status is non-zero if any failed.
                   pytest collecting no tests (exit 5) counts as a failure.
                   pytest ends with a branch-coverage report of src/rivet (the
                   test process only; no threshold).
  -h, --help       Show this help.

Setup is idempotent and fast when nothing is missing; see scripts/setup.sh --help
(e.g. RIVET_SETUP_SKIP_DEBIAN=1 skips building the Debian image for demo).
EOF
}

log() { echo "dev: $*"; }

# The API modules run a second time through pgbouncer (transaction mode): the ones
# that reach the database through the orchestrator conftest's `settings` fixture and
# cover jobs, pipelines, the runner protocol, log streams, stored values and secrets.
# Bounded on purpose (about a minute on CI); docs/reliability.md explains the set-up.
PGBOUNCER_TESTS=(
    tests/integration/orchestrator/test_api_jobs.py
    tests/integration/orchestrator/test_api_pipelines.py
    tests/integration/orchestrator/test_api_runner_protocol.py
    tests/integration/orchestrator/test_api_runner_tags.py
    tests/integration/orchestrator/test_api_stream.py
    tests/integration/orchestrator/test_api_values.py
    tests/integration/orchestrator/test_secrets_api.py
    tests/integration/orchestrator/test_secret_coverage.py
)

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

    if [ "$#" -eq 0 ]; then
        log "pytest -q -m postgres (orchestrator API tests through pgbouncer)"
        rc=0
        RIVET_TEST_THROUGH_PGBOUNCER=1 .venv/bin/pytest -q -p no:cacheprovider -m postgres \
            "${PGBOUNCER_TESTS[@]}" || rc=$?
        [ "$rc" -eq 0 ] || failed+=("pytest through pgbouncer (exit $rc)")
    else
        log "skipping the pgbouncer pass (pytest arguments given)"
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
