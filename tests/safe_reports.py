"""Failure reports that CPython 3.11.7's AST bug cannot turn into a pytest INTERNALERROR.

Up to 3.11.7 (and 3.12.1), ``ast.parse`` keeps its recursion depth in state shared by every call
(python/cpython#106905, fixed in 3.11.8 by python/cpython#113035). A second parse that starts while one
is under way breaks the first with "SystemError: AST constructor recursion depth mismatch". One can
start when the garbage collector runs Python code in the middle of a parse: that code may format a
traceback itself (a finalizer logging an error, pytest's hook for an exception raised in one; 3.11's
traceback module parses to place its ``^^^`` marks), or let another thread run that does (the test
sites' threads log their errors with tracebacks). Pytest parses the source files of a failing test to
report it: failing there, it stops the session with an INTERNALERROR and the tests after it never run.
So before a failure is reported its garbage is collected, and the collector stays off while the report
is made: no Python code, hence no other parse, can run in the middle of pytest's.
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
