"""Failure reports that CPython 3.11.7's AST bug cannot turn into a pytest INTERNALERROR.

Up to 3.11.7 (and 3.12.1), ``ast.parse`` keeps its recursion depth in state shared by every call
(python/cpython#106905, fixed in 3.11.8 by python/cpython#113035). When the garbage collector runs
Python code in the middle of a parse (a finalizer, or pytest's hook for an exception raised in one) and
that code formats a traceback, 3.11's traceback module parses again to place its ``^^^`` marks, and the
outer parse fails with "SystemError: AST constructor recursion depth mismatch". Pytest parses the
source files of a failing test to report it: failing there, it stops the session with an INTERNALERROR
and the tests after it never run. So before a failure is reported its garbage is collected, and the
collector stays off while the report is made.
"""

import gc

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if call.excinfo is None:
        return (yield)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return (yield)
    finally:
        if enabled:
            gc.enable()
