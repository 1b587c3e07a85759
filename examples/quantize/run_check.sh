#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ctest wrapper for check_gguf_py.py: runs it with a python that has gguf-py. When the system
# python3 lacks it, a venv is made once in WORK_DIR/venv (pip install gguf, about 15 s), as
# cmake/conan-check.sh does for conan. No python3, or no package index to install from: exit 77
# (ctest: skipped), never a pass.
# Usage: examples/quantize/run_check.sh QUANTIZE_TOOL WORK_DIR
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="$1" work="$2"
mkdir -p "$work"
command -v python3 >/dev/null || { echo "no python3: skipped"; exit 77; }
py=python3
if ! python3 -c "import gguf, numpy" 2>/dev/null; then
    py="$work/venv/bin/python"
    if ! "$py" -c "import gguf, numpy" 2>/dev/null; then
        { python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q gguf; } ||
            { echo "gguf-py could not be installed: skipped"; exit 77; }
    fi
fi
exec "$py" "$here/check_gguf_py.py" "$tool" "$work"
