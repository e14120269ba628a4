#!/usr/bin/env python3
"""Keeps a test registry from outliving its test: started by registry.sh next to the
registry (and token server), it ends them with SIGTERM (then SIGKILL) when

  - STATEDIR is gone (a test removed its scratch directory without `registry.sh stop`),
  - LIFETIME seconds have passed (0 = no limit), or
  - process OWNER has exited (0 = no owner; registry.sh passes $HARNESS_OWNER_PID, e.g. the
    test process, so a registry held in a never-dropped static dies with its test binary),

and exits by itself once none of them is running any more. When it ended them because
their owner exited, a scratch STATEDIR of a test's own (`rkt-registry-*`, which a static
registry's never-dropped TempDir would otherwise leave in /tmp) is removed too.

Usage: watchdog.py STATEDIR LIFETIME OWNER PID...
"""
import os
import shutil
import signal
import sys
import time


def alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def main():
    statedir, lifetime, owner = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pids = [int(p) for p in sys.argv[4:]]
    deadline = time.time() + lifetime if lifetime > 0 else None
    while any(alive(p) for p in pids):
        orphaned = owner and not alive(owner)
        if (not os.path.isdir(statedir) or (deadline and time.time() > deadline)
                or orphaned):
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                for p in pids:
                    if alive(p):
                        try:
                            os.kill(p, sig)
                        except OSError:
                            pass
                end = time.time() + wait
                while time.time() < end and any(alive(p) for p in pids):
                    time.sleep(0.05)
            if orphaned and os.path.basename(os.path.normpath(statedir)).startswith("rkt-registry-"):
                shutil.rmtree(statedir, ignore_errors=True)
            return
        time.sleep(1)


if __name__ == "__main__":
    main()
