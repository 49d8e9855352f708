#!/usr/bin/env bash
# Run a federation as separate processes on this machine, over gRPC with mutual TLS:
# the key authority, the aggregator and every configured party, each its own process,
# with fresh certificates in a temporary directory. Prints the final JSON (the
# `securefl run --json` format) on stdout and stops everything it started.
#
#   examples/deploy_local.sh examples/configs/plain.toml [--set SECTION.KEY=VALUE ...]
#
# The aggregator's log goes to stderr; the others' logs are shown if something fails.
# PYTHON picks the interpreter (default: python3).
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: $0 CONFIG [--set SECTION.KEY=VALUE ...]" >&2
    exit 2
fi
config=$1
shift
py=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/securefl-deploy.XXXXXX")
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for log in "$work"/*.log; do
            [[ -e "$log" ]] && { echo "--- ${log##*/}" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# two free ports on the loopback interface, and the party ids the config names
read -r agg_port auth_port < <("$py" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
overrides=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --set) [[ $# -ge 2 ]] || { echo "--set needs SECTION.KEY=VALUE" >&2; exit 2; }; overrides+=("$2"); shift 2 ;;
        --set=*) overrides+=("${1#--set=}"); shift ;;
        *) echo "unknown argument $1; usage: $0 CONFIG [--set SECTION.KEY=VALUE ...]" >&2; exit 2 ;;
    esac
done
overrides+=(transport.kind=grpc transport.aggregator_host=127.0.0.1 transport.authority_host=127.0.0.1
            transport.bind_host=127.0.0.1 "transport.aggregator_port=$agg_port" "transport.authority_port=$auth_port"
            "transport.cert_dir=\"$work/certs\"" "transport.checkpoint=\"$work/aggregator.ckpt\"" "transport.state_dir=\"$work/state\"")
sets=()
for item in "${overrides[@]}"; do
    sets+=(--set "$item")
done
parties=$("$py" -c 'import sys; from securefl import config
print(" ".join(config.load(sys.argv[1], sys.argv[2:]).federation.ids))' "$config" "${overrides[@]}")

"$py" -m securefl certs "$work/certs" --config "$config" "${sets[@]}" >&2

"$py" -m securefl authority "$config" "${sets[@]}" >"$work/authority.log" 2>&1 &
pids+=($!)
"$py" -m securefl aggregator "$config" "${sets[@]}" --json "$work/result.json" >&2 &
aggregator=$!
pids+=("$aggregator")
for party in $parties; do
    "$py" -m securefl party "$config" --id "$party" "${sets[@]}" >"$work/$party.log" 2>&1 &
    pids+=($!)
done

wait "$aggregator"
cat "$work/result.json"
