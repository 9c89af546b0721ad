"""Issue 12, item 8: the Django example's image builds the project from this repository.

Docker cannot run here, so the paths are checked statically: the compose file's build context
and Dockerfile, every COPY source, the directory ``pip install`` is given, and the final
WORKDIR (where ``manage.py`` must be) all resolve inside the build context, and
``.dockerignore`` keeps what the image needs.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path, PurePosixPath

from tests.docs_support import ROOT

PROJECT = ROOT / "examples" / "django_project"


def compose_build() -> tuple[Path, Path]:
    """(context, Dockerfile) of the compose file's web service, as absolute paths."""
    text = (PROJECT / "docker-compose.yml").read_text()
    context = re.search(r"^\s+context:\s*(\S+)$", text, re.MULTILINE)
    dockerfile = re.search(r"^\s+dockerfile:\s*(\S+)$", text, re.MULTILINE)
    assert context and dockerfile, "the compose file names a build context and a Dockerfile"
    assert text.count("build: *build") == 2  # processor and cron build the same image
    base = (PROJECT / context.group(1)).resolve()
    return base, base / dockerfile.group(1)


def test_compose_builds_from_the_repository_root() -> None:
    context, dockerfile = compose_build()
    assert context == ROOT and (context / "pyproject.toml").exists()
    assert dockerfile == PROJECT / "Dockerfile"


def test_the_dockerfile_paths_resolve_in_the_context() -> None:
    context, dockerfile = compose_build()
    mounts: dict[PurePosixPath, Path] = {}  # image path -> context path
    workdir = PurePosixPath("/")

    def local(image_path: PurePosixPath) -> Path:
        for mount, source in sorted(mounts.items(), key=lambda m: -len(str(m[0]))):
            if image_path == mount or mount in image_path.parents:
                return source / image_path.relative_to(mount)
        raise AssertionError(f"{image_path} is not copied from the build context")

    installed = False
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op == "WORKDIR":
            workdir = workdir / rest
        elif op == "COPY":
            *sources, target = shlex.split(rest)
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: not in the context"
                mounts[workdir / target] = (context / source).resolve()
        elif op == "RUN" and "pip install" in rest:
            spec = next(w for w in shlex.split(rest) if w.startswith("/"))
            folder = local(PurePosixPath(spec.split("[")[0]))
            assert (folder / "pyproject.toml").exists(), f"pip install {spec}: no pyproject.toml"
            installed = True
    assert installed, "the Dockerfile installs taskyard from the copied repository"
    assert local(workdir) == PROJECT and (local(workdir) / "manage.py").exists()


def test_dockerignore_keeps_what_the_image_needs() -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "taskyard/__init__.py",
                   "taskyard/backends/database/sql/sqlite/0001_initial.sql",
                   "examples/django_project/manage.py"):  # fmt: skip
        parts = needed.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        assert not any(fnmatch.fnmatch(p, pat) for p in prefixes for pat in patterns), needed
    assert ".venv*" in patterns and ".git" in patterns
