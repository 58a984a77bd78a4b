#!/usr/bin/env bash
# Conformance through the proxy: scim2-tester (tests/interop/scim2_tester_check.py) run against
# an application directly and through `scimtrail serve` (the generic profile, enforcing) in
# front of it must give the same result for every check — inserting scimtrail changes nothing
# a compliant client can observe. Run for the reference application and for scim2-server
# (PyPI). Loopback only.
#
# Usage: tests/interop/through_proxy.sh SCIMTRAIL_BINARY VENV
#   VENV holds scim2-tester's dependencies and scim2-server (tests/interop/requirements.txt).
set -euo pipefail
bin="$1"
venv="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/scimtrail-through-proxy.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

# check NAME BASE_URL: the tester's verdict per check, one `STATUS [type] title` line each,
# sorted (the reasons are left out: they may name ids and URLs that differ between runs).
check() {
  local status=0
  "$venv/bin/python" "$here/scim2_tester_check.py" "$2" >"$work/$1.out" 2>&1 || status=$?
  tail -n 1 "$work/$1.out"
  if [ "$status" -eq 2 ]; then
    echo "the tester could not run ($1):"; cat "$work/$1.out"; exit 1
  fi
  grep -E '^[A-Z]+ ' "$work/$1.out" | sed -E 's/^([A-Z]+) +([^:]*)(:.*)?$/\1 \2/' | sort >"$work/$1.verdicts"
}

# compare NAME: the direct run's verdicts and the proxied run's are the same.
compare() {
  if ! diff -u "$work/$1-direct.verdicts" "$work/$1-proxied.verdicts"; then
    echo "scim2-tester through scimtrail differs from the direct run ($1): above, - direct, + through scimtrail"
    echo "--- through scimtrail, in full:"; cat "$work/$1-proxied.out"
    exit 1
  fi
  echo "$1: $(wc -l <"$work/$1-direct.verdicts") checks, the same verdict directly and through scimtrail"
}

# serve NAME UPSTREAM: scimtrail in front of UPSTREAM; its base URL in $proxy_url. (Not a
# command substitution: what it starts would not be known here, to be stopped.)
serve() {
  local proxy_port
  proxy_port=$(port)
  SCIMTRAIL_LOG=warn "$bin" serve --upstream "$2" --idp generic --store "sqlite://$work/$1.db" \
    --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$(port)" >"$work/$1-proxy.log" 2>&1 &
  pids+=($!)
  wait_port "$proxy_port"
  proxy_url="http://127.0.0.1:$proxy_port"
}

# start_upstream NAME RUN: a fresh application (the tester creates and deletes resources, and
# both runs must start from the same state); its SCIM base URL in $upstream_url.
start_upstream() {
  local upstream_port
  upstream_port=$(port)
  case "$1" in
    refapp) "$bin" refapp --listen "127.0.0.1:$upstream_port" >"$work/$1-$2.log" 2>&1 & pids+=($!) ;;
    # scim2-server, a third-party SCIM server (PyPI), serves under /v2.
    scim2-server) "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$upstream_port" >"$work/$1-$2.log" 2>&1 & pids+=($!) ;;
  esac
  wait_port "$upstream_port"
  case "$1" in
    refapp) upstream_url="http://127.0.0.1:$upstream_port" ;;
    scim2-server) upstream_url="http://127.0.0.1:$upstream_port/v2" ;;
  esac
}

for upstream in refapp scim2-server; do
  start_upstream "$upstream" direct
  check "$upstream-direct" "$upstream_url"
  start_upstream "$upstream" proxied
  serve "$upstream" "$upstream_url"
  check "$upstream-proxied" "$proxy_url"
  compare "$upstream"
  # …and the proxied run went through scimtrail: its exchanges are recorded.
  recorded=$("$bin" exchanges list --store "sqlite://$work/$upstream.db" --limit 10000 --json |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))')
  [ "$recorded" -gt 100 ] || { echo "only $recorded exchanges recorded through scimtrail ($upstream)"; exit 1; }
  echo "$upstream: $recorded exchanges recorded through scimtrail"
done
