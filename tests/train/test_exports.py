"""augbal.train's public names: every one in __all__ imports from the module its table names, and
the names a user of the stage needs are there; importing the package imports no torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import augbal.train

NEEDED = {
    "resolve_data": "_data",
    "DataSplits": "_data",
    "seedlike3_task": "_data",
    "cifar10_lt_task": "_data",
    "read_history": "_loop",
    "lr_find": "_loop",
    "find_lr": "_optim",
    "LRFinderResult": "_optim",
    "TensorBoardLogger": "_tensorboard",
    "history_scalars": "_tensorboard",
}


@pytest.mark.parametrize("name", augbal.train.__all__)
def test_every_public_name_imports_from_its_private_module(name):
    module = importlib.import_module(f"augbal.train.{augbal.train._EXPORTS[name]}")
    assert getattr(augbal.train, name) is getattr(module, name)
    assert name in module.__all__  # the private module declares it public too


def test_the_names_a_user_needs_are_exported():
    assert {name: augbal.train._EXPORTS.get(name) for name in NEEDED} == NEEDED
    assert augbal.train.__all__ == sorted(augbal.train._EXPORTS) and dir(augbal.train) == augbal.train.__all__
    with pytest.raises(AttributeError, match="module 'augbal.train' has no attribute 'nope'"):
        augbal.train.nope  # noqa: B018


def test_importing_the_package_imports_no_torch():
    code = "import sys, augbal.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
