"""Jupyter server pre-save hook: refuse to save a notebook whose outputs may show protected data.

``sandbox lab`` configures it (``c.FileContentsManager.pre_save_hook``); the rule is the one the run store
applies (:func:`~sandbox._private.kernel.studies.scrub.classify_output`). Jupyter server lets a hook reject a save
by raising :class:`tornado.web.HTTPError`; JupyterLab then shows the message in its "File Save Error" dialog.
Non-notebook files are saved untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado.web import HTTPError

from .scrub import find_protected_outputs

__all__ = ["pre_save_hook", "refusal_message", "STATUS"]

#: HTTP status of a refused save: the request is well-formed, its content is refused.
STATUS = 422
_MAX_LISTED = 5


def refusal_message(path: str, model: Mapping[str, Any]) -> str | None:
    """Return why ``model`` (a contents-API model) may not be saved at ``path``, or None to allow it."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), Mapping):
        return None
    findings = find_protected_outputs(model["content"])
    if not findings:
        return None
    listed = "; ".join(f.describe() for f in findings[:_MAX_LISTED])
    more = f" (and {len(findings) - _MAX_LISTED} more)" if len(findings) > _MAX_LISTED else ""
    return (
        f"Not saved: {path} has {len(findings)} output(s) that may show protected data: {listed}{more}. "
        "Clear those outputs (Edit > Clear Outputs of Selected Cells) and display sandbox results or "
        "dataset.dummy() frames instead, then save again."
    )


def pre_save_hook(model: dict[str, Any], path: str, contents_manager: Any = None, **kwargs: Any) -> None:
    """Jupyter server pre-save hook; raise ``HTTPError(422)`` when the notebook may not be saved.

    Parameters
    ----------
    model : dict
        The contents model being saved (``type``, ``content``, ...).
    path : str
        The API path of the save destination.
    contents_manager : ContentsManager, optional
        The calling contents manager (unused).
    **kwargs
        Further keywords Jupyter server may pass (unused).
    """
    message = refusal_message(path, model)
    if message is not None:
        # tornado formats log_message with %-arguments: escape any % in paths.
        raise HTTPError(STATUS, message.replace("%", "%%"), reason="Notebook outputs may show protected data")
