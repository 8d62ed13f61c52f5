#!/bin/bash
# fleet-loadgen with a 5 ms linger for the fixed-rate runs
for a in "$@"; do if [[ $a == --rate ]]; then exec /tmp/lg1/fleet-loadgen-real "$@" --linger-ms 5; fi; done
exec /tmp/lg1/fleet-loadgen-real "$@"
