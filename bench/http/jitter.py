"""Emulates a jittery 2-vCPU machine (issue #20): on each given CPU, a real-time (SCHED_FIFO)
process busy for about `busy_ms` every `period_ms`, so whatever runs there is stalled that long,
as a hypervisor's vCPU preemption stalls a guest. Run under `chrt -f 50 taskset -c N`
(`bench/http/run.sh --jitter` does); stops on SIGTERM. With the defaults, a 1 ms sleep wakes
up to ~2.5 ms late at p99, as on the machine of the issue (2.0 ms p99, 4.1 ms max)."""

import random
import sys
import time

busy_ms = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
period_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
while True:
    end = time.perf_counter() + busy_ms / 1e3 * random.uniform(0.5, 1.5)
    while time.perf_counter() < end:
        pass
    time.sleep((period_ms - busy_ms) / 1e3 * random.uniform(0.5, 1.5))
