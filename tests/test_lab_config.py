"""``sandbox lab`` configuration: written where the server and kernels read it, command line loopback-only."""

from __future__ import annotations

import json
import os
import runpy
import socket
from pathlib import Path

import pytest
from traitlets.config import Config

from sandbox import OutputPathError
from sandbox._private.kernel.studies import lab as lab_mod
from sandbox._private.kernel.studies.presave import pre_save_hook


def test_config_files_load_the_hook_and_the_extension(tmp_path: Path) -> None:
    lab = lab_mod.write_lab_config(tmp_path)
    server_cfg, kernel_cfg = Config(), Config()
    runpy.run_path(str(lab / "jupyter_server_config.py"), {"get_config": lambda: server_cfg})
    runpy.run_path(
        str(lab / "ipython" / "profile_default" / "ipython_kernel_config.py"), {"get_config": lambda: kernel_cfg}
    )
    hook = server_cfg.FileContentsManager.pre_save_hook
    module, _, name = hook.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is pre_save_hook
    assert kernel_cfg.InteractiveShellApp.extensions == ["sandbox"]
    settings = lab / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    assert json.loads(settings.read_text()) == {"fetchNews": "false", "checkForUpdates": False}


def test_command_is_loopback_with_token(tmp_path: Path) -> None:
    cmd = lab_mod._command(8888, "tok", tmp_path / "nb", tmp_path / "lab")
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--IdentityProvider.token=tok" in cmd
    assert "--ServerApp.port=8888" in cmd and "--no-browser" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_free_port_is_bindable() -> None:
    port = lab_mod.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_notebook_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match=r"Notebook folder .* does not exist; pass --notebooks DIR"):
        lab_mod.start_lab(tmp_path / "ws", tmp_path / "nope", vault=False)


def test_the_shipped_notebooks_are_served_as_working_copies(tmp_path: Path) -> None:
    """Running and saving in the lab never writes into the templates: the lab serves copies in the workspace."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        (templates / name).write_text(json.dumps({"cells": [], "name": name}))
    ws = tmp_path / "ws"
    served = lab_mod.working_copies(ws, templates)
    assert served == ws / "notebooks" and sorted(p.name for p in served.iterdir()) == ["01_a.ipynb", "02_b.ipynb"]
    (served / "01_a.ipynb").write_text("the analyst's edited copy")
    (templates / "03_c.ipynb").write_text("{}")
    lab_mod.working_copies(ws, templates)  # a new template arrives; the edited copy is kept
    assert (served / "01_a.ipynb").read_text() == "the analyst's edited copy"
    assert (served / "03_c.ipynb").exists() and (templates / "01_a.ipynb").read_text().startswith("{")
    repo_notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    assert repo_notebooks == lab_mod.TEMPLATES
