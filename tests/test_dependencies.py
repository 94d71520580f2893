"""The lock and the ranges tell the same story: every locked top-level package satisfies its declared range.

The lock (lock/requirements.txt, written by scripts/lock) is what the README's commands and CI install; the ranges in
pyproject.toml are what `pip install evalkit` resolves. A lock outside a range, or a range with no lower bound that
`make test-oldest` can install, would make one of them untrue.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from evalkit.environment import lock_differences, version_line
from tests.conftest import REPO


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for name in ("torch.txt", "requirements.txt", "no-deps.txt"):
        for match in re.finditer(
            r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s|$)", (REPO / "lock" / name).read_text(encoding="utf-8"), re.M
        ):
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [Requirement(req) for req in [*project["dependencies"], *extras]]


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    locked = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is declared in pyproject.toml but not in lock/ (run scripts/lock)"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"lock has {name}=={locked[name]}, outside {requirement}"


def test_every_lower_bound_is_a_version_the_oldest_environment_installs() -> None:
    """scripts/lower-bounds turns each `>=X` into `==X` for `make test-oldest`: every direct dependency has one."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lower-bounds"), str(REPO / "pyproject.toml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pinned = {canonicalize_name(line.split("==")[0]): Version(line.split("==")[1]) for line in done.stdout.split()}
    for requirement in _declared():
        if requirement.name == "mteb":  # the golden comparisons pin the exact MTEB they reproduce
            continue
        name = canonicalize_name(requirement.name)
        lower = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        assert lower, f"{requirement} has no lower bound: make test-oldest could not test its oldest version"
        assert pinned.get(name) == lower[0], f"scripts/lower-bounds gives {pinned.get(name)} for {requirement}"


def test_the_lock_pins_hashes_for_every_package() -> None:
    text = (REPO / "lock" / "requirements.txt").read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text[text.index("\n" + next(iter(re.findall(r"^[A-Za-z0-9]", text, re.M)))) :])
    pinned = [entry for entry in entries if "==" in entry.split("\n", 1)[0]]
    assert len(pinned) > 50 and all("--hash=sha256:" in entry for entry in pinned)
    assert not re.search(r"^torch==", text, re.M), "torch comes from lock/torch.txt, installed first (the CPU wheel)"


def test_version_says_whether_the_installed_set_is_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    lock.mkdir()
    from importlib import metadata

    numpy = metadata.version("numpy")
    (lock / "requirements.txt").write_text(f"numpy=={numpy} \\\n    --hash=sha256:00\n", encoding="utf-8")
    assert lock_differences(lock) == (1, [])
    (lock / "requirements.txt").write_text("numpy==0.0.1 \\\n    --hash=sha256:00\nno-such-package-xyz==1.0\n", encoding="utf-8")
    count, differences = lock_differences(lock) or (0, [])
    assert count == 2 and differences == ["no-such-package-xyz not installed (locked 1.0)", f"numpy {numpy} (locked 0.0.1)"]
    assert lock_differences(tmp_path / "nowhere") is None
    line = subprocess.run([sys.executable, "-m", "evalkit", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert line.returncode == 0 and line.stdout.count("\n") == 1 and line.stdout.startswith("evalkit ")
    assert line.stdout.strip() == version_line(__import__("evalkit").__version__)
