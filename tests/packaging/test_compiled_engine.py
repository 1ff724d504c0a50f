"""The build hook (``hatch_build.py``) that compiles the engine with mypyc in a wheel.

The compile itself is checked by CI, which installs the wheel and asserts
``leadqual.engine.compiled()`` before running the engine's tests against it;
here: what it compiles, and when it leaves the wheel pure Python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import leadqual.engine
from leadqual.engine import compiled

ROOT = Path(__file__).resolve().parents[2]


def _hook_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("leadqual_hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


HOOK = _hook_module()


def _hook(target: str = "wheel") -> Any:
    return HOOK.MypycBuildHook(str(ROOT), {}, None, None, str(ROOT / "dist"), target)


def test_it_compiles_every_module_of_the_evaluating_engine() -> None:
    engine = ROOT / "src" / "leadqual" / "engine"
    modules = {f"leadqual/engine/{p.name}" for p in engine.glob("*.py") if p.name != "__init__.py"}
    # the text of instants, which the engine's states and reasons are written with, and
    # the store's write path every fact goes through on its way to the log, the rows of
    # qualifications and stage history, and the service's ingest that drives them
    write_path = {
        "leadqual/service/ingest.py",
        "leadqual/store/state.py",
        "leadqual/timetext.py",
        "leadqual/jsontext.py",
        "leadqual/store/codec.py",
        "leadqual/store/statements.py",
        "leadqual/store/writer.py",
    }
    assert set(HOOK.COMPILED) == modules | write_path
    assert all((ROOT / "src" / path).is_file() for path in HOOK.COMPILED)


@pytest.mark.parametrize(
    ("target", "version", "pure"),
    [("wheel", "editable", "0"), ("sdist", "standard", "0"), ("wheel", "standard", "1")],
)
def test_an_editable_install_an_sdist_and_a_pure_request_compile_nothing(
    target: str, version: str, pure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADQUAL_PURE_PYTHON", pure)
    hook = _hook(target)
    compiles: list[str] = []

    def compile_recorded() -> dict[Path, str]:
        compiles.append(version)
        return {}

    monkeypatch.setattr(hook, "_compile", compile_recorded)
    build_data: dict[str, Any] = {"force_include": {}, "artifacts": []}
    hook.initialize(version, build_data)
    assert compiles == []
    assert build_data == {"force_include": {}, "artifacts": []}


def test_a_wheel_compiles_and_includes_what_was_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADQUAL_PURE_PYTHON", raising=False)
    hook = _hook()
    built = {ROOT / "x.so": "leadqual/engine/reference.so"}
    monkeypatch.setattr(hook, "_compile", lambda: built)
    build_data: dict[str, Any] = {"force_include": {}, "artifacts": []}
    hook.initialize("standard", build_data)
    assert build_data["pure_python"] is False and build_data["infer_tag"] is True
    assert build_data["force_include"] == {str(ROOT / "x.so"): "leadqual/engine/reference.so"}
    hook.finalize("standard", build_data, "")  # removes its work directory
    assert not hook.work.exists()


def test_compiled_says_whether_the_engine_runs_as_an_extension() -> None:
    from leadqual.engine import reference

    origin = Path(reference.__file__ or "")
    assert compiled() == (origin.suffix == ".so" or origin.suffix == ".pyd")
    # an editable install (the test command's) runs the source
    if Path(leadqual.engine.__file__ or "").is_relative_to(ROOT / "src"):
        assert not compiled()
