"""`python -m bench` (make bench): start an emulator and the stack, run every measurement,
write results/bench.{json,md,png} and print the summary.

Everything binds 127.0.0.1 and is stopped at the end (by the objects that started it, by
pid); each run is bounded in jobs and time. Heavy imports wait inside main(): the sandboxes
and helper processes are spawned, and must not re-import this module's dependencies.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from bench.main import run

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: check the bench itself")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery comparison")
    args = parser.parse_args(argv)
    return run(quick=args.quick, out=args.out, celery=not args.no_celery)


if __name__ == "__main__":
    sys.exit(main())
