"""The package layout must never shadow the standard library's `platform` module."""

import subprocess
import sys

from conftest import REPO


def test_platform_dir_has_no_init() -> None:
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_still_imports_with_repo_root_on_path() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import platform; "
            "print(platform.system(), platform.__file__)")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    system, path = out.stdout.split()
    assert system and "platform.py" in path and str(REPO / "platform") not in path


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pubmedlm.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("corpus", "vocab", "params", "sources"):
        assert command in out.stdout


def test_integration_tests_are_marked_without_being_told() -> None:
    """A test that takes the mirror (directly or through another fixture) or carries the dvc /
    server / cluster marker is selected by `-m integration`; the rest are hermetic."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "-m", "integration", "tests/test_sources.py",
                          "tests/test_tracking.py"], cwd=REPO, capture_output=True, text=True, check=True)
    picked = {line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line}
    assert picked == {
        "test_builtin_catalog_declares_every_manifest_file",  # the mirror fixture, no marker written
        "test_dvc_hash_equals_what_dvc_records",  # @pytest.mark.dvc
        "test_stage_run_arrives_at_mlflow_server_over_http"}  # server marker and the project fixture
