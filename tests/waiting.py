"""Wait for a condition instead of sleeping a fixed time."""

import time


def wait_until(predicate, timeout=10.0, message="the condition", interval=0.01):
    """Call ``predicate`` until it returns a true value, and return that value.

    Fails with ``message`` once ``timeout`` seconds have passed: a fixed sleep is
    too short on a loaded machine and too long everywhere else.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not within {timeout} s")
        time.sleep(interval)
