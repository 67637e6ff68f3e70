"""Docker 20.10's history text of a HEALTHCHECK step.

Docker writes it as ``fmt.Sprintf("HEALTHCHECK %q", runConfig.Healthcheck)``: Go's ``%q``
applied field by field to a ``*HealthConfig`` — ``&{["CMD-SHELL" "true"] "30s" "0s" "0s"
'\\x03'}``: the test as a quoted list, the three durations through ``time.Duration.String`` and
quoted, and the retry count quoted *as a rune* (``%q`` of an int). To make
``history --no-trunc`` the same text in both tools, it is reproduced here exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from strata.gofmt import go_duration, go_quote, go_quote_rune


def healthcheck_text(check: Mapping[str, Any]) -> str:
    """``HEALTHCHECK &{...}``: Docker 20.10's history text of the config ``check``.

    Docker 20.10's HealthConfig has Test, Interval, Timeout, StartPeriod, Retries; a
    StartInterval (a later Docker's flag, which strata accepts) is not part of its text.
    """
    test: Sequence[str] = check.get("Test") or ()
    fields = [
        "[" + " ".join(go_quote(part) for part in test) + "]",
        *(
            go_quote(go_duration(int(check.get(name, 0))))
            for name in ("Interval", "Timeout", "StartPeriod")
        ),
        go_quote_rune(int(check.get("Retries", 0))),
    ]
    return "HEALTHCHECK &{" + " ".join(fields) + "}"
