#!/usr/bin/env python3
"""Keep the kernel's movable threads off one CPU for a benchmark, and put
them back (scripts/bench, BENCH_ISOLATE=1).

    isolate-core.py on STATE CPU   # move them; record what was changed in STATE
    isolate-core.py off STATE      # put back what STATE records; remove it

"Movable" means: a kernel thread (PF_KTHREAD in /proc/PID/stat), under
SCHED_OTHER (real-time ones such as watchdogd are left where they are, so
nothing real-time ends up confined to the core the server runs on at
SCHED_FIFO), whose affinity is every online CPU, and which accepts the
change (per-CPU threads such as ksoftirqd/N and kworkers refuse it). The
unbound workqueues' mask (/sys/devices/virtual/workqueue/cpumask) gets the
same treatment. Each thread is written to STATE with its start time before
it is moved, so a crash in between loses nothing and a PID reused by the
time of `off` is not touched. STATE survives a `kill -9` of the benchmark:
`isolate-core.py off STATE` then puts things back.
"""

import os
import sys

PF_KTHREAD = 0x00200000
WQ_MASK = "/sys/devices/virtual/workqueue/cpumask"


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # The name (field 2) may hold spaces and parentheses: split after its end.
    return s[s.rindex(")") + 2 :].split()


def online():
    cpus = set()
    with open("/sys/devices/system/cpu/online") as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def kernel_mask(cpus):
    """The kernel's bitmap text: 32-bit hex groups, comma-separated."""
    n = sum(1 << c for c in cpus)
    groups = []
    while True:
        groups.append(f"{n & 0xFFFFFFFF:08x}")
        n >>= 32
        if not n:
            break
    return ",".join(reversed(groups))


def on(state, cpu):
    cpus = online()
    if cpu not in cpus or len(cpus) < 2:
        sys.exit(f"CPU {cpu} is not online, or it is the only one: nothing to isolate")
    others = cpus - {cpu}
    moved = 0
    with open(state, "w") as out:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                # Fields from 3 on: flags is field 9, starttime 22, policy 41.
                f = stat_fields(pid)
                if not int(f[9 - 3]) & PF_KTHREAD or int(f[41 - 3]) != os.SCHED_OTHER:
                    continue
                if os.sched_getaffinity(pid) != cpus:
                    continue
                out.write(f"thread {pid} {f[22 - 3]} {kernel_mask(cpus)}\n")
                out.flush()
                os.sched_setaffinity(pid, others)
                moved += 1
            except (OSError, ValueError, IndexError):
                continue  # gone, or bound to its CPU
        try:
            with open(WQ_MASK) as f:
                old = f.read().strip()
            out.write(f"workqueue {old}\n")
            out.flush()
            with open(WQ_MASK, "w") as f:
                f.write(kernel_mask(others))
        except OSError as e:
            print(f"the unbound workqueues stay where they are: {e}", file=sys.stderr)
    print(f"kept {moved} kernel threads and the unbound workqueues off CPU {cpu} "
          f"(to put them back after a crash: {sys.argv[0]} off {state})")


def parse_mask(text):
    n = int(text.replace(",", ""), 16)
    return {c for c in range(n.bit_length()) if n >> c & 1}


def off(state):
    try:
        with open(state) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        kind, *rest = line.split()
        try:
            if kind == "thread":
                pid, start, mask = int(rest[0]), rest[1], rest[2]
                if stat_fields(pid)[22 - 3] == start:
                    os.sched_setaffinity(pid, parse_mask(mask))
            elif kind == "workqueue":
                with open(WQ_MASK, "w") as f:
                    f.write(rest[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread is gone
    os.remove(state)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "on":
        on(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "off":
        off(sys.argv[2])
    else:
        sys.exit(__doc__)
