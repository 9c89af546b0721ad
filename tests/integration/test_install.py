"""Issue 12, item 8: taskyard installs as the README says — from a built wheel, from the
sdist, from a git URL — into fresh virtual environments, and the README's first-task path
(install, first task, worker, status, show) runs in an empty folder without PYTHONPATH.

Slow (it builds and installs three times); CI runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import ROOT, user_env
from tests.conftest import skip_or_fail

pytestmark = pytest.mark.slow

IGNORED = shutil.ignore_patterns(
    ".git", ".venv*", ".demo", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    "*.sqlite3*", "results",
)  # fmt: skip


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def first_task_path(page: Path) -> tuple[dict[str, str], str]:
    """The files (python blocks whose first line is ``# name.py``) and the console block that
    runs them, from a doc page."""
    text = page.read_text()
    files = {
        m.group(1): m.group(0)
        for m in re.finditer(r"(?<=```python\n)# (\w+\.py)\n.*?(?=```)", text, re.DOTALL)
    }
    script = next(
        b for b in re.findall(r"```console\n(.*?)```", text, re.DOTALL) if "enqueue.py" in b
    )
    return files, script


def fresh_venv(where: Path) -> Path:
    run(sys.executable, "-m", "venv", where, cwd=where.parent)
    return where / "bin"


def run_first_task(page: Path, bin_dir: Path, folder: Path) -> str:
    """Write the page's files into an empty ``folder`` and run its console block with bash,
    the fresh environment first on PATH and no PYTHONPATH."""
    folder.mkdir()
    files, script = first_task_path(page)
    assert set(files) == {"tasks.py", "enqueue.py"}
    for name, body in files.items():
        (folder / name).write_text(body)
    env = user_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    return run("bash", "-euo", "pipefail", "-x", "-c", script, cwd=folder, env=env)


def test_the_readme_shows_the_three_ways_to_install() -> None:
    for page in (ROOT / "README.md", ROOT / "docs" / "quickstart.md"):
        block = next(
            b
            for b in re.findall(r"```console\n(.*?)```", page.read_text(), re.DOTALL)
            if "pip install" in b
        )
        assert re.search(r"pip install \./taskyard\s", block), page  # a checkout
        assert re.search(r"pip install taskyard-[\d.]+-py3-none-any\.whl", block), page  # a wheel
        assert "git+https://" in block, page  # a git URL
        assert first_task_path(page)[0]


def test_build_install_and_run_the_first_task(tmp_path: Path) -> None:
    try:
        import build  # noqa: F401
    except ImportError:
        skip_or_fail("the `build` package is not installed (pip install 'taskyard[dev]')")
    src = tmp_path / "taskyard"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, src, cwd=tmp_path)
    wheel = next(dist.glob("taskyard-*-py3-none-any.whl"))
    sdist = next(dist.glob("taskyard-*.tar.gz"))
    assert not (src / "build").exists() or _ignored_by_git("build/")

    # the wheel, as the README shows it: `pip install taskyard-0.1.0-py3-none-any.whl`
    bin_dir = fresh_venv(tmp_path / "venv-wheel")
    run(bin_dir / "pip", "install", "--quiet", wheel.name, cwd=dist)
    for page, folder in ((ROOT / "README.md", "readme"), (ROOT / "docs/quickstart.md", "quick")):
        out = run_first_task(page, bin_dir, tmp_path / folder)
        assert "SUCCESSFUL" in out and "\"sent 'Welcome' to ada@example.com\"" in out, out
        assert "0 task(s)" in out  # `taskyard list --status failed`
        assert (tmp_path / folder / "taskyard.sqlite3").exists()

    # the sdist, and a checkout given as a path with extras: `pip install "./taskyard[cron]"`
    bin_dir = fresh_venv(tmp_path / "venv-sdist")
    run(bin_dir / "pip", "install", "--quiet", sdist, cwd=tmp_path)
    assert run(bin_dir / "taskyard", "--version", cwd=tmp_path).startswith("taskyard ")
    run(bin_dir / "pip", "install", "--quiet", "./taskyard", cwd=tmp_path)
    assert "ok" in run(bin_dir / "taskyard", "check", "--url", "dummy:", cwd=tmp_path)

    # a git URL
    run("git", "init", "-q", cwd=src)
    run("git", "add", "-A", cwd=src)
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=src)
    bin_dir = fresh_venv(tmp_path / "venv-git")
    run(bin_dir / "pip", "install", "--quiet", f"git+file://{src}", cwd=tmp_path)
    assert run(bin_dir / "taskyard", "--version", cwd=tmp_path).startswith("taskyard ")


def _ignored_by_git(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return done.returncode == 0
