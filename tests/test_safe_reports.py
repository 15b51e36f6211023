"""The suite's guard for its failure reports (tests/safe_reports.py), on a pytest session of its own."""

import os
import subprocess
import sys
from pathlib import Path

#: A failing test while the garbage collector runs code that formats a traceback (as a finalizer logging an
#: exception does), then a test that must still run; and enough source to parse that the collector runs.
INNER = """
import gc
import traceback


def _format_a_traceback(phase, info):
    try:
        raise ValueError("from a finalizer")
    except ValueError as e:
        traceback.format_exception(e)


def test_fails_while_the_collector_formats_tracebacks():
    gc.callbacks.append(_format_a_traceback)
    assert 1 + 1 == 3


def test_runs_after_it():
    gc.callbacks.remove(_format_a_traceback)


def source_to_parse():
"""
INNER += "\n".join(f"    x{n} = [{n}, {n} + 1, str({n})]" for n in range(400)) + "\n"

#: Pythons whose ast.parse fails when it runs inside another (python/cpython#106905).
AFFECTED = (3, 11) <= sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2)


def _session(tmp_path: Path, *options: str) -> str:
    (tmp_path / "test_inner.py").write_text(INNER)
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options, "test_inner.py"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120).stdout


def test_a_failure_is_reported_and_the_tests_after_it_run_while_the_collector_formats_tracebacks(tmp_path):
    guarded = _session(tmp_path, "-p", "tests.safe_reports")
    assert "INTERNALERROR" not in guarded and "1 failed, 1 passed" in guarded, guarded
    assert "assert (1 + 1) == 3" in guarded
    if AFFECTED:  # the guard is what keeps the session alive
        bare = _session(tmp_path)
        assert "SystemError: AST constructor recursion depth mismatch" in bare and "no tests ran" in bare, bare
