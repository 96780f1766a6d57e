"""Where tokens were minted, and whether the reviewers of a release are independent of its author.

In laptop mode (no Unix-socket deployment remembered) the account that owns the workspace can mint any token, so
reviews with tokens it minted are "not independently reviewed". A deployment's tokens, minted by the vault's own
account for other people, are independent.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path

import pytest

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.server import remember
from sandbox._private.vault.tokens import NOT_INDEPENDENT, TokenStore, ensure_client_token


def _store(tmp_path: Path, *, deployment: bool) -> tuple[WorkspaceLayout, TokenStore]:
    layout = WorkspaceLayout.create(tmp_path / "ws")
    if deployment:
        remember(layout, socket="/run/sandbox/vault.sock")
    return layout, TokenStore(layout.tokens)


def test_laptop_mode_reviews_are_not_independent(tmp_path: Path) -> None:
    layout, store = _store(tmp_path, deployment=False)
    ensure_client_token(store, layout.client_token)  # the local analyst's own token
    author = store.list()[0].name
    store.create("rianne", "reviewer")
    store.create("rob", "reviewer")
    infos = {t.name: t for t in store.list()}
    assert infos["rianne"].local is True and infos["rianne"].minted_uid == os.geteuid()
    assert infos["rianne"].minted_by == getpass.getuser()
    verdict = store.independence(author, ["rianne", "rob"])
    assert not verdict.independent and verdict.label == NOT_INDEPENDENT == "not independently reviewed"
    assert len(verdict.reasons) == 2
    assert "reviewer token 'rianne' was minted on a local vault by OS account" in verdict.reasons[0]
    assert "(the author's own account)" in verdict.reasons[0]
    assert verdict.to_dict()["label"] == "not independently reviewed"


def test_deployment_reviews_are_independent(tmp_path: Path) -> None:
    _, store = _store(tmp_path, deployment=True)
    store.create("alice", "analyst")
    store.create("rianne", "reviewer")
    store.create("rob", "reviewer")
    verdict = store.independence("alice", ["rianne", "rob"])
    assert verdict.independent and verdict.label == "independently reviewed" and verdict.reasons == ()


def test_tokens_minted_by_another_account_than_the_owner_are_not_local(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the workspace to another account")
    layout, store = _store(tmp_path, deployment=False)
    shutil.chown(layout.root, "nobody")  # the vault's folder belongs to another account than the one minting
    store.create("rianne", "reviewer")
    assert store.list()[0].local is False
    assert store.independence("alice", ["rianne"]).independent


def test_unknown_provenance_author_among_reviewers_and_missing_reviewer(tmp_path: Path) -> None:
    layout, store = _store(tmp_path, deployment=True)
    old = {"name": "ria", "role": "reviewer", "sha256": "0" * 64, "created": "2026-01-01T00:00:00+00:00"}
    layout.tokens.write_text(json.dumps({"tokens": [old]}), encoding="utf-8")  # a token file from before
    store.create("alice", "reviewer")
    verdict = store.independence("alice", ["ria", "alice", "nobody-here"])
    assert not verdict.independent
    text = " | ".join(verdict.reasons)
    assert "'ria' is older than the record of where tokens are minted" in text
    assert "the author 'alice' is among the reviewers" in text
    assert "reviewer 'nobody-here' holds no reviewer token of this vault" in text
