"""Under CI=true no test may be skipped: a skip there means a real check did not
run (a prerequisite is missing), so it is reported as a failure. Tests use
support.require() for their prerequisites; this hook is the backstop for any
other skip (pytest.skip, skip marks, importorskip). Elsewhere skips stay skips,
and scripts/test runs pytest with -rs so their reasons are listed."""

from __future__ import annotations

import pytest

from support import in_ci


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # A module that skips itself while being collected (allow_module_level=True).
    report = yield
    if report.outcome == "skipped" and in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"
    return report


def pytest_report_header(config):
    return "CI=true: skips are failures" if in_ci() else "not CI: skips are allowed and listed (-rs)"
