"""Authorisation: no token, a wrong token, or a token of the wrong role on every endpoint of the vault.

Defence: every endpoint except ``/v1/health`` needs ``Authorization: Bearer <token>``; the vault stores only each
token's sha256 (in a file only its OS user can read); a valid token whose role may not use an endpoint gets 403.
The endpoints (the vault's and the release gate's) are read from the live OpenAPI schema of a ``vault serve``
process, so a new endpoint is attacked too, and must be listed in :data:`ROLES` (the permission matrix, as in
OpenSAFELY's airlock) before this test passes.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ._vault_http import assert_clean_error

PUBLIC = {("GET", "/v1/health")}
ANY = frozenset({"analyst", "reviewer", "admin"})
# (method, path template) -> roles allowed. Admin work (datasets, tokens) is done with the CLI on the vault host.
ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/v1/datasets"): ANY,
    ("GET", "/v1/datasets/{name}/schema"): ANY,
    ("GET", "/v1/datasets/{name}/dummy"): ANY,
    ("POST", "/v1/query"): frozenset({"analyst", "admin"}),
    ("POST", "/v1/cost"): frozenset({"analyst", "admin"}),
    ("POST", "/v1/fit"): frozenset({"analyst", "admin"}),
    ("POST", "/v1/fit/cost"): frozenset({"analyst", "admin"}),
    ("GET", "/v1/budget/{name}"): ANY,
    ("GET", "/v1/results/{result_id}"): ANY,
    ("POST", "/v1/models/{model_id}/audit"): frozenset({"analyst", "admin"}),
    ("POST", "/v1/releases"): frozenset({"analyst"}),
    ("GET", "/v1/releases"): ANY,
    ("GET", "/v1/releases/{request_id}"): ANY,
    ("POST", "/v1/releases/{request_id}/actions"): ANY,  # checked per action: see REVIEWER_ACTIONS
    ("POST", "/v1/releases/{request_id}/release"): frozenset({"reviewer", "admin"}),
    ("GET", "/v1/verify"): frozenset({"reviewer", "admin"}),
    ("GET", "/v1/releases/{request_id}/items/{item_id}/report"): frozenset({"reviewer", "admin"}),
    ("POST", "/v1/releases/{request_id}/items/{item_id}/report-link"): frozenset({"reviewer", "admin"}),
    ("GET", "/review/fragments/requests"): frozenset({"reviewer", "admin"}),
    ("GET", "/review/fragments/requests/{request_id}"): frozenset({"reviewer", "admin"}),
    ("GET", "/v1/gate/flags"): frozenset({"reviewer", "admin"}),
    ("GET", "/v1/jobs"): frozenset({"analyst", "admin"}),
    ("GET", "/v1/jobs/{job_id}"): frozenset({"analyst", "admin"}),  # and only its owner: another's id is a 404
    ("DELETE", "/v1/jobs/{job_id}"): frozenset({"analyst", "admin"}),
    ("POST", "/v1/review/login"): frozenset({"reviewer"}),
    ("POST", "/v1/review/session"): frozenset({"reviewer"}),  # a reviewer token or a one-time login code
}
REVIEWER_ACTIONS = ("approve", "reject", "return")
PATH_VALUES = {
    "name": "households",
    "result_id": "r_doesnotexist",
    "model_id": "r_doesnotexist",
    "request_id": "req_0123456789abcdef",
    "item_id": "r_doesnotexist",
    "job_id": "job_0123456789abcdef01234567",
}
BAD_CREDENTIALS = {
    "no token": None,
    "malformed token": "Bearer not-a-token",
    "unknown token": "Bearer sbx_" + "A" * 43,
    "wrong scheme": "Basic YW5hbHlzdDpwYXNzd29yZA==",
    "token one character too long": "Bearer sbx_" + "B" * 44,
    "empty bearer": "Bearer",
}


def _operations(client: httpx.Client) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m in ("get", "post", "put", "delete")]


def _call(client: httpx.Client, method: str, template: str, auth: str | None, body: Any = None) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
    headers = {} if auth is None else {"Authorization": auth}
    return client.request(method, path, headers=headers, json=body if method == "POST" else None)


def _matrix(c: httpx.Client, tokens: dict[str, str]) -> tuple[int, int, int]:
    """Attack every endpoint with bad credentials and every wrong role; return (endpoints, 401s, 403s)."""
    ops = _operations(c)
    unknown = [op for op in ops if op not in ROLES and op not in PUBLIC]
    assert not unknown, f"endpoints {unknown} are not in the permission matrix ROLES; add them with their roles"
    n_401 = n_403 = 0
    for method, path in ops:
        if (method, path) in PUBLIC:
            continue
        for what, auth in BAD_CREDENTIALS.items():
            r = _call(c, method, path, auth, body={})
            assert_clean_error(r, 401, match=r"(?i)token", what=(method, path, what))
            n_401 += 1
        for role in sorted(ANY - ROLES[(method, path)]):
            r = _call(c, method, path, f"Bearer {tokens[role]}", body={})
            assert_clean_error(r, 403, match=f"role '{role}'", what=(method, path, role))
            n_403 += 1
    if ("POST", "/v1/releases/{request_id}/actions") in ops:
        for role in ("analyst", "admin"):
            for action in REVIEWER_ACTIONS:
                r = _call(c, "POST", "/v1/releases/{request_id}/actions", f"Bearer {tokens[role]}", {"action": action})
                assert_clean_error(r, 403, match="reviewer", what=(role, action))
                n_403 += 1
    return len(ops) - len(PUBLIC & set(ops)), n_401, n_403


@pytest.mark.system
@pytest.mark.attack("authorisation", defence="bearer tokens with roles; 401 without a valid token, 403 for a role")
def test_every_endpoint_refuses_bad_tokens_and_wrong_roles(
    shared_vault: Any, attack_figure: Callable[[str], None]
) -> None:
    vault = shared_vault
    tokens = {role: vault.token(role) for role in ("analyst", "reviewer", "admin")}
    with httpx.Client(base_url=vault.url, timeout=60) as c:
        n_ops, n_401, n_403 = _matrix(c, tokens)
    attack_figure(f"vault process: {n_ops} endpoints x {len(BAD_CREDENTIALS)} bad credentials: {n_401} x 401; "
                  f"{n_403} wrong-role calls: 403")  # fmt: skip


@pytest.mark.attack("authorisation", defence="only sha256 of tokens stored, in a file only the vault's user reads")
def test_token_file_holds_no_plain_tokens(tmp_path: Any, attack_figure: Callable[[str], None]) -> None:
    from sandbox._private.vault.tokens import TokenStore

    store = TokenStore(tmp_path / "tokens.json")
    plain = [store.create(f"user{i}", role) for i, role in enumerate(("analyst", "reviewer", "admin"))]
    text = (tmp_path / "tokens.json").read_text(encoding="utf-8")
    mode = stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode)
    assert not any(t in text or t[4:] in text for t in plain)
    assert mode & 0o077 == 0, f"tokens.json has mode {mode:o}; only its owner may read it"
    assert store.authenticate(f"Bearer {plain[0]}").role == "analyst"
    with pytest.raises(PermissionError, match=r"(?i)token"):
        store.authenticate(f"Bearer {plain[0][:-1]}X" if plain[0][-1] != "X" else f"Bearer {plain[0][:-1]}Y")
    attack_figure(f"tokens.json mode {mode:o}; 3 tokens, none stored in plain text")
