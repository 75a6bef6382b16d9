"""Credentials: read from the environment only, and taken out of every message, printed line and artifact.

A server or proxy may echo a request's credentials back (in an error body, a warning, any field), so redaction does
not trust where text came from: every string that leaves the process passes `redact`, which replaces each known
secret with `[redacted]`. Known are the values of the variables below, whatever process reads them, and what
the sources derive or receive at run time (`remember`): the Basic header value, `user:password`, bearer tokens.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Optional

ENVIRONMENT = ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD")
REDACTED = "[redacted]"
MIN_LENGTH = 4  # shorter values would blank ordinary words and numbers; no real credential is that short

_learned: set[str] = set()
_forms_for: tuple[tuple[tuple[str, ...], int], tuple[str, ...]] = (((), 0), ())


def from_environment(variable: str) -> Optional[str]:
    """$variable without surrounding whitespace (a pasted or `echo`ed value ends in a newline); None if unset or
    blank. A value an HTTP header cannot carry is a ValueError naming the variable, never showing the value."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    if not value.isascii():
        raise ValueError(
            f"${variable} holds a non-ASCII character "
            "(a credential travels in an HTTP header, which carries ASCII only)"
        )
    if not value.isprintable():
        raise ValueError(f"${variable} holds a control character (a line break or tab inside the value)")
    return value


def withheld(environment: Mapping[str, str]) -> dict[str, str]:
    """`environment` without the credential variables: what a process carbon-pipe starts for you gets."""
    return {name: value for name, value in environment.items() if name not in ENVIRONMENT}


def remember(*values: str) -> None:
    """Redact these too from now on, in this process: credentials derived or received at run time."""
    _learned.update(value for value in values if len(value) >= MIN_LENGTH)


def _forms() -> tuple[str, ...]:
    """Every secret as written raw, JSON-escaped and repr-escaped, longest first (so `user:password` goes whole)."""
    global _forms_for
    key = (tuple(os.environ.get(variable, "").strip() for variable in ENVIRONMENT), len(_learned))
    if key != _forms_for[0]:
        values = [value for value in (*key[0], *_learned) if len(value) >= MIN_LENGTH]
        forms = {form for value in values for form in (value, json.dumps(value)[1:-1], repr(value)[1:-1])}
        _forms_for = (key, tuple(sorted(forms, key=len, reverse=True)))
    return _forms_for[1]


def _without(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redactor() -> Callable[[str], str]:
    """`redact` with the secrets known now, for many strings in a row (a CSV's cells): the environment read once."""
    forms = _forms()
    return lambda text: _without(text, forms)


def redact(text: str) -> str:
    """`text` with every known secret replaced by `[redacted]`."""
    return _without(text, _forms())


def redact_data(value: Any) -> Any:
    """JSON-like data with every string (keys too) redacted; numbers stay numbers, whatever digits a secret has."""
    forms = _forms()

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            return _without(item, forms)
        if isinstance(item, dict):
            return {clean(key): clean(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(inner) for inner in item]
        return item

    return clean(value) if forms else value
