"""The public surface: a small __all__, a light import, module-level mirrors that name what to do."""

from __future__ import annotations

import json
import subprocess
import sys

import tracker_jupyter as tj


def test_all_is_the_public_surface():
    assert sorted(tj.__all__) == [
        "Api", "Artifact", "Audio", "AuthenticationError", "CommError", "ConfigError", "Error", "Histogram",
        "Html", "Image", "Object3D", "Plotly", "Run", "Settings", "Table", "UsageError", "Video", "agent",
        "config", "define_metric", "finish", "init", "link_model", "load_ipython_extension", "log",
        "log_artifact", "log_model", "login", "plot", "run", "save", "summary", "sweep",
        "unload_ipython_extension", "unwatch", "use_artifact", "use_model", "watch",
    ]  # fmt: skip
    for name in tj.__all__:
        if name not in ("run",):
            assert getattr(tj, name) is not None, name


def test_exception_hierarchy_subclasses_builtins():
    assert issubclass(tj.UsageError, (tj.Error, ValueError))
    assert issubclass(tj.ConfigError, (tj.Error, ValueError))
    assert issubclass(tj.CommError, (tj.Error, ConnectionError))
    assert issubclass(tj.AuthenticationError, tj.CommError) and issubclass(
        tj.AuthenticationError, PermissionError
    )


def test_import_is_light_and_works_in_a_plain_script():
    code = (
        "import sys, json, tracker_jupyter\n"
        "heavy = ['IPython', 'ipywidgets', 'requests', 'nbformat', 'yaml', 'traitlets', 'numpy', 'mlflow']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_wandb_style_alias_for_the_common_api():
    import tracker_jupyter as wandb

    assert callable(wandb.init) and callable(wandb.log) and callable(wandb.finish)
    assert wandb.run is None
    assert "no active run" in repr(wandb.config)
