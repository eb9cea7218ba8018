"""`make bench`: run every benchmarks/bench_*.py script in turn and print its figures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main() -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if len(sys.argv) > 1:
        scripts = [s for s in scripts if any(name in s.name for name in sys.argv[1:])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    failures = []
    for script in scripts:
        sys.stdout.write(f"== {script.name}\n")
        sys.stdout.flush()
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, check=False)
        sys.stdout.write(
            f"== {script.name} finished in {time.monotonic() - started:.1f} s (exit {result.returncode})\n"
        )
        if result.returncode != 0:
            failures.append(script.name)
    if failures:
        sys.stdout.write(f"failed: {', '.join(failures)}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
