#!/usr/bin/env bash
# Waits (up to 60 s) until a `fleetscore serve` started with `--http-addr 127.0.0.1:0` answers
# /readyz, and prints its address.
#
#   addr="$(scripts/wait-ready.sh SERVE_LOG PID)"
#
# SERVE_LOG is where the server logs (its `HTTP listening addr=...` line, at info level for
# fleetscore::lifecycle), PID its process. Fails, showing the log, if the process exits or
# never becomes ready.
set -euo pipefail
log_file="${1:?usage: wait-ready.sh SERVE_LOG PID}"
pid="${2:?usage: wait-ready.sh SERVE_LOG PID}"
addr=""
for _ in $(seq 600); do
  addr="$(sed -n 's/.*HTTP listening addr=\([0-9.:]*\).*/\1/p' "$log_file" | head -n1)"
  [[ -n "$addr" ]] && curl -fsS -o /dev/null "http://$addr/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$log_file" >&2; echo "wait-ready: the server exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://$addr/readyz" || { cat "$log_file" >&2; echo "wait-ready: the server never became ready" >&2; exit 1; }
echo "$addr"
