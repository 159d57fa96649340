"""The course installs where readers are: Colab (each notebook's setup cell) and Binder (binder/).

Both are tested the way they run, each in a fresh virtual environment under build/test-install/ that
starts with only PyTorch (torch, torchvision, torchaudio and what they depend on; plus ipykernel for
Colab, which runs notebooks). Those packages are hard-linked from this environment, not downloaded or
copied again (the CUDA build is gigabytes); pip treats them as installed, and uninstalling one would
only unlink the copy. Everything else comes from pip as a reader's machine would get it.

- Colab: unirep_lite is built into a wheel, a notebook is copied alone into an empty folder (Colab's
  /content) and executed in FAST mode by a kernel of the fresh environment; its setup cell installs the
  wheel (UNIREP_INSTALL, the offline route the README documents) and only the packages missing, keeps
  PyTorch, and says what it did; the rest of the notebook must run.
- Binder: binder/postBuild runs in the fresh environment on a copy of the repository (as repo2docker
  does), and binder/start must start the course in FAST mode.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from importlib import metadata as md
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tools import book, course

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "test-install"
PYTORCH = ("torch", "torchvision", "torchaudio")
COLAB_NOTEBOOK = "01_dilated_reparam_block.ipynb"  # the quickest notebook in FAST mode

pytestmark = pytest.mark.slow


def norm(name: str) -> str:
    return name.lower().replace("_", "-")


def closure(names) -> list[md.Distribution]:
    """The installed distributions `names` and everything they require (extras and markers respected)."""
    seen, todo = {}, [(name, frozenset()) for name in names]
    while todo:
        name, extras = todo.pop()
        key = (norm(name), extras)
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # an optional requirement this platform does not install
        seen[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((req.name, frozenset(req.extras)))
    unique = {norm(d.metadata["Name"]): d for d in seen.values()}
    return list(unique.values())


def fresh_venv(path: Path, dists: list[md.Distribution]) -> Path:
    """A new virtual environment at `path` holding only `dists`, hard-linked from this one. Returns its python."""
    start = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    venv.EnvBuilder(with_pip=True).create(path)
    python = path / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    for dist in dists:
        base = Path(dist.locate_file(""))
        for file in dist.files or []:
            if file.parts[0] == "..":  # console scripts live outside site-packages; not needed here
                continue
            src, dst = base / file, site / file
            if src.is_file() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:  # another file system: copy (slower, same result)
                    shutil.copy2(src, dst)
    print(f"{path.name}: fresh venv with {len(dists)} linked distributions in {time.perf_counter() - start:.0f} s")
    return python


def clean_env(**extra) -> dict:
    """This process's environment without what points at this checkout or this venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(Path(sys.prefix))))
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True)
    found = sorted(out.glob("unirep_lite-*.whl"))
    assert found, f"no wheel built in {out}"
    return found[0]


def test_the_wheel_holds_the_library_only(wheel):
    """tools/ (course runner, book builder) needs a checkout and stays out of the wheel."""
    import zipfile

    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "unirep_lite" in tops and not {"tools", "tests", "notebooks"} & tops, tops


def test_colab_setup_cell_installs_what_is_missing_and_the_notebook_runs(wheel, tmp_path, monkeypatch):
    python = fresh_venv(WORK / "colab", closure(PYTORCH + ("ipykernel",)))
    before = subprocess.check_output([python, "-m", "pip", "list", "--format=json"], text=True, env=clean_env())
    before = {norm(d["name"]): d["version"] for d in json.loads(before)}
    assert "unirep-lite" not in before and "timm" not in before and "torch" in before
    # a kernel of the fresh environment, as Colab's own
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    content = tmp_path / "content"  # the notebook alone, nothing of the checkout around it
    content.mkdir()
    shutil.copy2(ROOT / "notebooks" / COLAB_NOTEBOOK, content)
    env = clean_env(UNIREP_INSTALL=str(wheel), UNIREP_FAST="1")
    start = time.perf_counter()
    nb, seconds = course.execute(content / COLAB_NOTEBOOK, content / "executed.ipynb", env=env,
                                 kernel_name="colab", timeout=900)
    print(f"colab: notebook with its setup cell executed in {time.perf_counter() - start:.0f} s")
    setup = nb.cells[1]
    assert book.INSTALL_TAG in setup.metadata.tags
    text = "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream")
    print(text)
    installed = text.split("installed:")[1].split("\n")[0]
    assert "unirep-lite 0.1.0" in installed and "timm " in installed, text
    for pkg in PYTORCH:  # Colab's PyTorch is kept, never replaced
        assert f"{pkg}=={before[pkg]}" in text.split("kept:")[1], text
        assert f" {pkg} " not in installed + " "
    names = {entry.split()[0] for entry in installed.split(",") if entry.strip()}
    assert "jupyterlab" not in names and not set(PYTORCH) & names  # Colab has its own front end and PyTorch
    assert not [n for n in names if n.startswith("nvidia")]  # PyTorch's CUDA libraries are never fetched again
    for name, pin in book.colab_pins().items():  # what was missing came at the versions CI tests
        if norm(name) not in before:
            assert f"{norm(name)} {pin}" in installed, f"{name} not installed at {pin}: {installed}"
    assert "FAST run" in text, text
    where = subprocess.check_output([python, "-c", "import unirep_lite; print(unirep_lite.__file__)"],
                                    text=True, env=env, cwd=tmp_path)
    assert str(WORK / "colab") in where, f"unirep_lite imported from {where}, not the fresh environment"


def test_binder_environment_installs_and_starts_in_fast_mode(tmp_path):
    # what binder/requirements.txt asks for is what the fresh environment starts with
    reqs = [Requirement(line) for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    assert sorted(norm(r.name) for r in reqs) == sorted(PYTORCH)
    for r in reqs:
        assert r.specifier.contains(md.version(r.name).split("+")[0]), f"{r} vs installed {md.version(r.name)}"
    python = fresh_venv(WORK / "binder", closure(PYTORCH))
    repo = tmp_path / "repo"  # repo2docker builds from a copy of the repository
    files = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    env = clean_env(PATH=f"{python.parent}{os.pathsep}{clean_env()['PATH']}")
    env.pop("UNIREP_FAST", None)
    env.pop("UNIREP_SIZE", None)
    start = time.perf_counter()
    run = subprocess.run(["bash", "binder/postBuild"], cwd=repo, env=env, capture_output=True, text=True)
    print(f"binder: postBuild in {time.perf_counter() - start:.0f} s")
    assert run.returncode == 0, f"binder/postBuild failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    check = ("import unirep_lite; from unirep_lite import env, runsize; print(unirep_lite.__file__); "
             "runsize.describe_run('03', env.run_size(), env.default_device(), binder=env.on_binder())")
    run = subprocess.run(["binder/start", "python", "-c", check], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith(str(repo)), run.stdout  # the editable install of the repository
    assert "FAST run (size 'fast')" in run.stdout and "Binder" in run.stdout, run.stdout
