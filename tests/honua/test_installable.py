"""The apps as an installable distribution: a web project outside the repository installs the wheel and uses it."""

import base64
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.db import connection

from honua.scratch_db import scratch_database
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
WEBPROJECT = PROJECT_ROOT / "tests" / "honua" / "webproject"
_LEFT_OUT_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.egg-info", "node_modules")
# Only at the top: an app may have a folder of these names (the build admin's templates live in .../build/).
_LEFT_OUT_AT_TOP = {".venv", ".honua", ".git", "test-output", "tests", "bench", "build", "dist", "examples"}


def LEFT_OUT(directory, names):
    """What the copy of the repository the wheel is built from leaves out."""
    top = Path(directory) == PROJECT_ROOT
    return set(_LEFT_OUT_ANYWHERE(directory, names)) | ({n for n in names if n in _LEFT_OUT_AT_TOP} if top else set())


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    shutil.copytree(PROJECT_ROOT, root / "src", ignore=LEFT_OUT)  # never build in the working tree
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--quiet",
        "--wheel-dir",
        str(root / "dist"),
        str(root / "src"),
    )
    (built,) = (root / "dist").glob("honua-*.whl")
    return built


def test_wheel_has_the_sql_files_templates_and_static_files_and_no_tests(wheel):
    """The wheel carries every migration's SQL file, the current-schema tree, templates and static files."""
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {
        path.relative_to(PROJECT_ROOT).as_posix()
        for pattern in ("*/sql/*.sql", "*/sql/current/**/*.sql", "*/templates/**/*.html", "*/static/**/*.*")
        for path in PROJECT_ROOT.glob(pattern)
        if not path.is_relative_to(PROJECT_ROOT / ".venv")
    }
    assert on_disk
    assert on_disk <= names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_web_project_installs_the_wheel_migrates_and_calls_the_selectors(wheel, tmp_path):
    """In a fresh virtualenv outside the repository, the wheel installs, migrates an empty database (SQL files
    found in the installed package) and the selectors answer."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel))
    shutil.copytree(WEBPROJECT, tmp_path / "webproject", ignore=shutil.ignore_patterns("__pycache__"))
    settings = connection.settings_dict
    with scratch_database("web") as url:
        env = {
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "webproject.settings",
            "PYTHONPATH": str(tmp_path),
            "SECRET_KEY": base64.b64encode(os.urandom(40)).decode(),
            "PGDATABASE": url.rsplit("/", 1)[1],
            "PGUSER": settings["USER"],
            "PGPASSWORD": settings.get("PASSWORD") or "",
            "PGHOST": settings["HOST"] or "",
            "PGPORT": str(settings["PORT"] or ""),
            "HONUA_ENCRYPTION_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
            "HONUA_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        migrated = _run(python, "-m", "django", "migrate", "--no-input", cwd=tmp_path, env=env)
        assert "Applying builds.0004_queue... OK" in migrated.stdout
        used = json.loads(_run(python, "webproject/use_selectors.py", cwd=tmp_path, env=env).stdout)
    assert str(venv) in used["installed_at"] and str(PROJECT_ROOT) not in used["installed_at"]
    assert used["found_by_key"] is True
    assert used["usable"] is True
    assert used["quota"]["used"] == 1
    assert used["active_builds"] == [used["build"]]
    assert used["conversations"] == 0
