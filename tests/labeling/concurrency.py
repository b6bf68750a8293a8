"""Writes racing each other in tests: actions run in threads started together, each on its own
database connection."""

from __future__ import annotations

import threading

from django.db import connection


def at_once(*actions, join_seconds: float = 30, what: str = "a write") -> list:
    """Run the actions in threads released together; each one's outcome: "ok" or the error it
    raised. Fails when a thread has not finished within `join_seconds` (a deadlock)."""
    barrier = threading.Barrier(len(actions))
    outcomes: list = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait(timeout=10)
            action()
            outcomes[index] = "ok"
        except Exception as exc:  # the outcome is what the test checks
            outcomes[index] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=join_seconds)
    assert not any(thread.is_alive() for thread in threads), f"{what} never finished"
    return outcomes
