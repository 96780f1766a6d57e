"""The comment a reviewer's decision needs: reasons of substance, in the reviewer's own words.

Approve, reject and return are decisions a reviewer signs for; the vault refuses each one whose comment

1. is empty;
2. has fewer than :data:`MIN_CHARACTERS` letters and digits (``"ok"``, ``"prima"``, ``"lgtm"``, ``"+1"``);
3. names fewer than :data:`MIN_CONTENT_WORDS` different words beyond stock approval words and filler
   (:data:`STOCK_WORDS`, :data:`FILLER_WORDS`: ``"looks good to me"``, ``"ziet er goed uit, akkoord"``,
   ``"ok ok ok ok ok ok"``);
4. for an approval only: repeats, word for word (case, spacing and punctuation aside), a comment already on the
   request, such as the first reviewer's approval copied by the second, or the reviewer's own approval of another
   request (the same stock phrase on every request).

Reasons to reject or return may be repeated: a second reviewer who returns a request for the reason the first gave
agrees with it, and the gate's standard reason for a disclosure failure is meant to be used as it is. Plain comments
and the author's responses only need to be non-empty. The vault cannot tell whether a reviewer read the request; it
refuses the answers that show they need not have. The rule is applied by :func:`sandbox._private.vault.gate.workflow.
apply`, so the web page, ``sandbox review`` and every other client meet the same rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sandbox._private.shared.errors import ReleaseError

__all__ = [
    "DECISIONS",
    "MIN_CHARACTERS",
    "MIN_CONTENT_WORDS",
    "STOCK_WORDS",
    "FILLER_WORDS",
    "RULE",
    "check_decision_comment",
    "normalise",
    "content_words",
]

#: The actions whose comment must be of substance.
DECISIONS: frozenset[str] = frozenset({"approve", "reject", "return"})
#: Fewest letters and digits in a decision comment.
MIN_CHARACTERS = 20
#: Fewest different words, beyond stock words and filler, in a decision comment.
MIN_CONTENT_WORDS = 3

#: Words that approve without saying why (English and Dutch).
STOCK_WORDS: frozenset[str] = frozenset(
    """
    ok okay oke okee oké k kk lgtm sgtm ack ship shipit yes yep ja jawel prima top super mooi akkoord
    goedgekeurd goedkeuren goedkeuring goed good great fine nice perfect perfecte approved approve approval accept
    accepted aanvaard correct klopt gezien seen agree agreed eens looks look lijkt ziet uit alright thanks thx
    bedankt dank done klaar gedaan
    """.split()  # noqa: SIM905 - a word list reads better as text
)
#: Short words that carry no reason (English and Dutch).
FILLER_WORDS: frozenset[str] = frozenset(
    """
    the and for but not all any this that these those with from have has had was were are its it's you your
    me my we us to of in on at by as is be it so do no i mij mijn ik wij ons nee niet geen de het een en van
    voor met bij als dat die dit deze er op aan om te tot naar ook nog wel maar dan here hier seems everything
    alles nothing niets comment comments opmerking opmerkingen remark remarks issue issues problem problems
    probleem problemen bezwaar bezwaren objection objections
    """.split()  # noqa: SIM905
)

RULE = (
    f"a comment of substance: at least {MIN_CHARACTERS} letters or digits and {MIN_CONTENT_WORDS} different words "
    "beyond stock approvals (ok, lgtm, prima, akkoord, looks good ...); an approval in your own words, not a copy of "
    "a comment on the request or of your approval of another request"
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def normalise(text: str) -> str:
    """Return ``text`` for comparison: NFKC, case-folded, words only, single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(folded))


def content_words(text: str) -> set[str]:
    """Return the different words of ``text`` that are neither stock approvals nor filler (two letters or more)."""
    words = set(normalise(text).split())
    return {w for w in words if len(w) >= 2 and w not in STOCK_WORDS and w not in FILLER_WORDS}


def check_decision_comment(
    action: str,
    text: str,
    *,
    on_request: Iterable[tuple[str, str]] = (),
    own_approvals: Iterable[tuple[str, str]] = (),
) -> None:
    """Refuse a decision comment that fails the rule of this module; other actions pass unchecked.

    Parameters
    ----------
    action : str
        The workflow action (only :data:`DECISIONS` are checked).
    text : str
        The comment.
    on_request : iterable of (who, text)
        Votes and comments already on the request (every round).
    own_approvals : iterable of (request id, text)
        The reviewer's approval comments on other requests.

    Raises
    ------
    ReleaseError
        Naming the part of the rule the comment fails and what to write instead.
    """
    if action not in DECISIONS:
        return
    if not text.strip():
        raise ReleaseError(f"{action} needs a comment explaining it; pass comment='...' with {RULE}.")
    letters = sum(ch.isalnum() for ch in text)
    if letters < MIN_CHARACTERS:
        raise ReleaseError(
            f"the comment {text.strip()[:40]!r} is too short to {action} on ({letters} letters or digits, at least "
            f"{MIN_CHARACTERS}): say what you checked and why, for example the purpose, the disclosure findings, "
            "the fairness verdict or the privacy spend."
        )
    words = content_words(text)
    if len(words) < MIN_CONTENT_WORDS:
        raise ReleaseError(
            f"the comment {text.strip()[:60]!r} says no more than a stock approval ({len(words)} word(s) beyond ok, "
            f"lgtm, prima, akkoord and the like; at least {MIN_CONTENT_WORDS}): name what you checked and why you "
            f"{action}."
        )
    if action != "approve":
        return
    mine = normalise(text)
    for who, earlier in on_request:
        if normalise(earlier) == mine:
            raise ReleaseError(
                f"this approval repeats the comment of {who} on this request word for word; a second review "
                "needs the second reviewer's own reasons."
            )
    for request_id, earlier in own_approvals:
        if normalise(earlier) == mine:
            raise ReleaseError(
                f"this approval is word for word your approval of request {request_id}; a stock phrase is not a "
                "review: say what you checked in this request."
            )
