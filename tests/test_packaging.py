"""What `pip install alphad` puts into a bot's environment: one top-level name, alphad.

The folders protocol/, actors/, daemon/ and replay/ are installed as alphad.protocol and
so on (alphad/ links them); installed under their own names they would shadow other
distributions (`daemon` is python-daemon's import name).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("protocol", "actors", "daemon", "replay")


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of the checkout, built from a copy so the build leaves nothing behind."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in (*FOLDERS, "alphad"):
        shutil.copytree(
            ROOT / name,
            source / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    out = tmp_path / "wheel"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("alphad-*.whl")
    return wheel


def test_the_wheel_installs_alphad_alone_with_every_module_of_the_folders(
    tmp_path: Path,
) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"alphad"}
    modules = {name for name in names if name.endswith(".py")}
    for folder in FOLDERS:
        on_disk = {
            f"alphad/{folder}/{path.relative_to(ROOT / folder).as_posix()}"
            for path in (ROOT / folder).rglob("*.py")
        }
        assert on_disk and on_disk <= modules, sorted(on_disk - modules)
    assert "alphad = alphad.daemon.entry:main" in scripts


def test_the_installed_names_import_in_a_fresh_interpreter_outside_the_checkout(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import importlib.util, sys\n"
        "import alphad.protocol.client, alphad.daemon.cli, alphad.replay.runner\n"
        "print(alphad.daemon.cli.__file__)\n"
        "print([n for n in ('protocol', 'actors', 'daemon', 'replay')"
        " if importlib.util.find_spec(n) is not None])\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{probe}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    where, bare = result.stdout.splitlines()
    assert where.startswith(str(target))
    assert bare == "[]"
