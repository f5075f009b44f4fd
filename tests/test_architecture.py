"""The map of docs/architecture.md holds: lazy TensorFlow, one reader of the encoder's
attrs, model modules that import no other model module."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sklattn

PACKAGE = Path(sklattn.__file__).resolve().parent
MODEL_MODULES = sorted(
    p for p in (PACKAGE / "models").glob("*.py") if not p.name.startswith("_")
)


@pytest.mark.parametrize(
    "statement",
    [
        "import sklattn",
        "from sklattn import SequenceEncoder",
        "import sklattn.preprocessing, sklattn.datasets, sklattn.metrics, sklattn.plotting",
    ],
)
def test_light_imports_do_not_import_tensorflow(statement):
    code = f"{statement}\nimport sys\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_models_load_on_first_use():
    from sklattn.models import DINClassifier

    assert sklattn.DINClassifier is DINClassifier
    assert {"DINClassifier", "MINDRetriever", "SequenceEncoder"} <= set(dir(sklattn))
    with pytest.raises(AttributeError, match="NoSuchModel"):
        sklattn.NoSuchModel  # noqa: B018


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules (and of the names in them) a model module imports."""
    package = ["sklattn", "models"]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", MODEL_MODULES, ids=lambda p: p.name)
def test_no_model_module_imports_another(path):
    others = [f"sklattn.models.{p.stem}" for p in MODEL_MODULES if p != path]
    clash = sorted(
        name for name in _imported_modules(path) for other in others
        if name == other or name.startswith(other + ".")
    )
    assert not clash, f"{path.name} imports another model's module: {clash}"


def test_only_the_data_module_reads_the_encoders_attrs():
    readers = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
        if ".attrs" in p.read_text()
    )
    # The encoder writes the attrs; sklattn/_data.py is the one reader.
    assert readers == ["_data.py", "preprocessing/_encoder.py"]
