"""The compiled selector: used only when built from the sources as they are, and choosing as
the pure-Python one does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.cli import cli
from engine import native

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A copy of the engine's sources, nothing built."""
    copy = tmp_path / "engine"
    copy.mkdir()
    for source in native.PACKAGE.glob("*.py"):
        shutil.copy2(source, copy / source.name)
    monkeypatch.setattr(native, "PACKAGE", copy)
    monkeypatch.setattr(native, "NATIVE", copy / "_native")
    monkeypatch.setattr(native, "STAMP", copy / "_native" / "stamp.json")
    monkeypatch.delenv(native.OFF, raising=False)
    return copy


@pytest.fixture
def package(sources):
    """A copy of the engine's sources, with a stamp saying a build was made from them."""
    native.NATIVE.mkdir()
    native.STAMP.write_text(json.dumps({"built_from": native.fingerprint()}))
    return sources


def test_a_build_is_used_while_the_sources_are_those_it_was_built_from(package):
    assert native.usable()


def test_an_edited_source_sets_the_build_aside(package):
    selection = package / "selection.py"
    selection.write_text(selection.read_text() + "\n# edited\n")
    assert not native.usable()


def test_a_new_source_sets_the_build_aside(package):
    (package / "extra.py").write_text("X = 1\n")
    assert not native.usable()


def test_a_build_for_another_interpreter_is_set_aside(package):
    stamp = json.loads(native.STAMP.read_text())
    stamp["built_from"]["abi"] = ".cpython-399-x86_64-linux-gnu.so"
    native.STAMP.write_text(json.dumps(stamp))
    assert not native.usable()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"built_from": null}'])
def test_a_missing_or_damaged_stamp_means_pure_python(package, content):
    native.STAMP.write_text(content)
    assert not native.usable()
    native.STAMP.unlink()
    assert not native.usable()


def test_the_compiled_selector_can_be_turned_off(package, monkeypatch):
    monkeypatch.setenv(native.OFF, "1")
    assert not native.usable()
    monkeypatch.setenv(native.OFF, "0")
    assert native.usable()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here")
def test_compile_builds_a_selector_used_until_a_source_changes_then_rebuilds_it(sources):
    result = CliRunner().invoke(cli, ["engine", "compile"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "compiled selection" in result.output
    suffix = str(native.sysconfig.get_config_var("EXT_SUFFIX"))
    assert (sources / "_native" / f"selection{suffix}").is_file()
    assert native.usable()
    (sources / "knowledge.py").write_text((sources / "knowledge.py").read_text() + "\n")
    assert not native.usable()
    # Built again, swapped in whole: nothing left aside.
    assert CliRunner().invoke(cli, ["engine", "compile"], catch_exceptions=False).exit_code == 0
    assert native.usable()
    assert sorted(p.name for p in sources.iterdir() if p.name.startswith("_native")) == ["_native"]


def test_a_failed_compile_says_so_in_one_line_and_keeps_the_previous_build(package, monkeypatch):
    monkeypatch.setattr(native, "COMPILED", ("missing",))  # mypyc finds no such source
    result = CliRunner().invoke(cli, ["engine", "compile"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: not compiled, the pure-Python selector stays in use")
    assert len(result.output.strip().splitlines()) == 1
    monkeypatch.setattr(native, "COMPILED", ("selection",))
    assert native.usable()


# 40 simulated learners of the bundled profile: every choice, answer, knowledge element and
# progress estimate, and which module made them.
_CHOICES = """
import json, random
import engine.selection
from bench.engine import profile_of
from engine.content import load_pack
from engine.selection import SELECTORS
from engine.simulation import random_learner, run
profile = profile_of(load_pack())
taken = []
for n in range(40):
    rng = random.Random(f"learner-{n}")
    out = run(SELECTORS["adaptive"], profile, random_learner(profile, rng), rng, progress=True)
    taken.append([
        [(s.challenge.id, str(s.result)) for s in out.steps],
        sorted((k, str(e.status), str(e.source)) for k, e in out.knowledge.items()),
        [repr(p) for p in out.progress],
    ])
print(json.dumps({"module": engine.selection.__file__, "taken": taken}))
"""


def _choices(pure: bool) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != native.OFF}
    if pure:
        environment[native.OFF] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _CHOICES], cwd=ROOT, env=environment, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(
    not native.usable(), reason="not built here (`make install` builds it), or turned off"
)
def test_the_compiled_selector_chooses_as_the_pure_python_one():
    compiled, pure = _choices(pure=False), _choices(pure=True)
    assert compiled["module"].endswith(str(native.sysconfig.get_config_var("EXT_SUFFIX")))
    assert pure["module"].endswith("selection.py")
    assert compiled["taken"] == pure["taken"]
