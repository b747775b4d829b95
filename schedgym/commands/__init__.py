"""Sub-commands of the ``schedgym`` CLI (one module each) and what they share."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json_object"]


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object given on the command line; ``ValueError`` naming the option otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc.msg} (got {text!r})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {text!r}")
    return value
