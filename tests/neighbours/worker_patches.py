"""Imported by the vault's fork server (see :func:`patches.install_in_workers`): the harness's patches in workers.

Every computation of a served vault runs in a worker process forked from a fork server that starts a fresh
interpreter, so the patches the launcher installed in the vault process are not there. The fork server imports
this module after the engine (``workers.pool._PRELOAD``), which installs them again, switched by the same flag
folder (named in the environment the fork server inherits).
"""

import os
from pathlib import Path

import patches

patches.configure(Path(os.environ[patches.FLAGS_ENV]))
patches.install_blind()
patches.install_leaky_gate()
