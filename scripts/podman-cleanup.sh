#!/usr/bin/env bash
# scripts/podman-cleanup.sh — remove leftover Rivet containers.
# Usage: bash scripts/podman-cleanup.sh [--job ID]
#   Removes every container labelled rivet.managed=true (with --job, only
#   those also labelled rivet.job=ID). Podman ANDs several label filters.
set -euo pipefail

filters=(--filter label=rivet.managed=true)
while [ $# -gt 0 ]; do
    case "$1" in
        --job)
            if [ $# -lt 2 ] || [ -z "$2" ]; then
                echo "podman-cleanup: --job needs an ID" >&2; exit 2
            fi
            filters+=(--filter "label=rivet.job=$2"); shift ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "podman-cleanup: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

mapfile -t ids < <(podman ps -a -q "${filters[@]}")
if [ "${#ids[@]}" -eq 0 ]; then
    echo "podman-cleanup: nothing to remove"
    exit 0
fi
podman rm -f -t 0 "${ids[@]}" >/dev/null
echo "podman-cleanup: removed ${#ids[@]} container(s)"
