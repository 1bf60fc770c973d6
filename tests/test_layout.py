"""The package layout must never shadow the standard library's `platform` module."""

import subprocess
import sys

from conftest import REPO


def test_platform_dir_has_no_init() -> None:
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_still_imports_with_repo_root_on_path() -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); import platform; print(platform.system(), platform.__file__)"
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    system, path = out.stdout.split()
    assert system and "platform.py" in path and str(REPO / "platform") not in path


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pubmedlm.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("corpus", "vocab", "params", "sources"):
        assert command in out.stdout
