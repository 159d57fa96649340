"""The project's three package lists (pyproject.toml, environment.yml, constraints.txt) agree."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {name(r): r.replace(" ", "") for r in reqs}


def environment_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ")]
    return {name(r): r.replace(" ", "") for r in reqs if not r.startswith("-e")}


def test_environment_yml_names_the_same_packages_and_ranges_as_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_constraints_pin_every_declared_package_exactly():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            pkg, version = line.split("==")
            pins[name(pkg)] = version.strip()
    missing = sorted(set(pyproject_requirements()) - set(pins))
    assert not missing, f"constraints.txt lacks pins for {missing}: run `make lock`"
    assert pins["torch"] == "2.13.0"  # the PyPI build; torchvision/torchaudio wheels need it
