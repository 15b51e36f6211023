#!/usr/bin/env bash
# Install shoal and its Python dependencies into ./.venv, exactly as uv.lock pins them.
# The Dockerfiles run it with --no-dev --no-editable (plus --extra browser for the browser image);
# .ci/run runs it with --extra browser, so CI exercises the same step on a bare machine.
set -euo pipefail
UV_VERSION="0.13.9"
command -v uv >/dev/null || python3 -m pip install --no-cache-dir --quiet "uv==${UV_VERSION}"
uv sync --locked --quiet "$@"
