"""A regular install gets everything: the wheel built from the tracked files holds every module the
console scripts can import and every file of the packages (rulebooks, migrations, templates…).

An editable install reads the source tree and would hide a package left out of the wheel."""

import configparser
import modulefinder
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [name for name in out.decode().split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the tracked files, as from a clean clone."""
    source = tmp_path_factory.mktemp("source")
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True,
    )
    (built,) = dist.glob("geocredit-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


def _entry_points(wheel: zipfile.ZipFile) -> dict[str, str]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(name).decode())
    return dict(parser["console_scripts"])


def _package_roots() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return [p.rstrip("*") for p in patterns]


def test_console_scripts_are_the_documented_ones(wheel):
    assert set(_entry_points(wheel)) == {"geocredit", "monitorsim"}


def test_every_module_a_console_script_imports_is_in_the_wheel(wheel):
    """Follows every import statement, inside functions too, from each entry point's module
    (and the ASGI factories the CLI names by string), and keeps those that come from this
    checkout: each must be a file of the wheel."""
    roots = {target.split(":")[0] for target in _entry_points(wheel).values()} | {"api.app"}
    finder = modulefinder.ModuleFinder(path=[str(ROOT), *sys.path])
    for module in sorted(roots):
        finder.import_hook(module)
    installed = Path(sys.prefix).resolve()  # a virtual environment inside the checkout
    files = {Path(m.__file__).resolve() for m in finder.modules.values() if m.__file__}
    ours = {
        f.relative_to(ROOT).as_posix()
        for f in files
        if f.is_relative_to(ROOT) and not f.is_relative_to(installed)
    }
    assert len(ours) > 50  # the CLI, the API, the jobs, the registry, scoring, monitorsim
    assert sorted(ours - set(wheel.namelist())) == []


def test_every_tracked_file_of_the_packages_is_in_the_wheel(wheel):
    """Data files included: rulebooks, migrations and their template, templates, assets."""
    roots = tuple(f"{r}/" for r in _package_roots())
    wanted = {name for name in _tracked_files() if name.startswith(roots)}
    assert any(name.endswith(".toml") for name in wanted)
    assert sorted(wanted - set(wheel.namelist())) == []
