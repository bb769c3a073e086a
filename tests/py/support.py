"""Helpers every end-to-end test shares: prerequisites that must not be skipped
silently in CI, and waiting on a condition with a deadline instead of sleeping.

`require(cond, why)`: a missing prerequisite skips the test on a developer's
machine (the reason is shown by `pytest -rs`) and fails it when CI=true.
conftest.py turns any other skip into a failure under CI=true as well.

`wait_until(pred, timeout, what)`: polls `pred` until it returns something
truthy (and returns that), or fails with `what` once `timeout` seconds passed.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from typing import Any, Callable

import pytest


def in_ci() -> bool:
    """True when CI=true (GitHub Actions, GitLab CI and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition: Any, why: str) -> None:
    """A prerequisite of the calling test: skip without it, or fail under CI=true."""
    __tracebackhide__ = True  # a skip is reported at the calling test
    if condition:
        return
    if in_ci():
        pytest.fail(f"missing prerequisite (CI=true, so this is not skipped): {why}", pytrace=False)
    pytest.skip(why)


def _describe(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def wait_until(pred: Callable[[], Any], timeout: float, what: str | Callable[[], str],
               interval: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll `pred` until it returns a truthy value (returned); AssertionError after `timeout` s.

    `what` (or what() for text computed only on failure, e.g. a log) says what was awaited.
    Exceptions of the types in `ignore` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except ignore as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)} (last: {last!r})")
        time.sleep(interval)


async def wait_until_async(pred: Callable[[], Any], timeout: float, what: str | Callable[[], str],
                           interval: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """wait_until for async test bodies; `pred` may return an awaitable."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = pred()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
        except ignore as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)} (last: {last!r})")
        await asyncio.sleep(interval)
