"""`make test`: lint, then the whole suite, against PostgreSQL and Redis when they are reachable.

DATABASE_URL / REDIS_URL from the environment win (CI sets them). Otherwise PostgreSQL at
127.0.0.1:5432 (user postgres, database test) and Redis at 127.0.0.1:6379 are used when they
answer, else SQLite, and the tests that need Redis and a Celery worker are skipped, except
under CI=true, where a missing service is an error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(host: str, port: int, *, timeout: float = 1) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds (also used by
    tests/integration/conftest.py)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def main() -> int:
    env = dict(os.environ)
    if not env.get("DATABASE_URL") and reachable("127.0.0.1", 5432):
        env["DATABASE_URL"] = PG_URL
    if not env.get("REDIS_URL") and reachable("127.0.0.1", 6379):
        env["REDIS_URL"] = REDIS_URL
    print(f"database: {env.get('DATABASE_URL', 'sqlite (embedded)')}")
    print(f"redis:    {env.get('REDIS_URL', 'none: integration tests will be skipped')}")
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, env=env)
    if ruff.returncode != 0:
        print("ruff found problems (see above)")
        return ruff.returncode
    return subprocess.run([sys.executable, "-m", "pytest", *sys.argv[1:]], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
