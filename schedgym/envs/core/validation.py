"""Constructor-kwarg checks that fail with a message naming the parameter and the allowed range."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["check_int", "check_float", "check_choice", "check_bool", "json_object", "shown_value"]

_NUMBER_LIKE = re.compile(r"[\d\s+\-.,_eExX]*")


def json_object(text: str, where: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; ``ValueError`` starting with ``where`` (file:line, column name)
    for invalid JSON, nesting too deep for the parser, or any other JSON value."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got a JSON {type(value).__name__}")
    return value


def shown_value(text: str) -> str:
    """How an error quotes a field read from a file: the value if it is short and number-like (``'3.5'``,
    ``'1e400'``, Arabic-Indic digits), else only its length, so that a file that is not what it was
    said to be (a key, a password file) is never echoed."""
    if len(text) <= 24 and _NUMBER_LIKE.fullmatch(text):
        return repr(text)
    return f"a value of {len(text)} characters"


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int or raise ``ValueError`` naming ``name`` and ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ValueError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be an integer{_range(low, high)}, got {v}")
    return v


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float or raise ``ValueError`` naming ``name`` and the range."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number{_range(low, high, low_inclusive, high_inclusive)}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number{_range(low, high, low_inclusive, high_inclusive)}, got {value!r}"
        ) from None
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v < low if low_inclusive else v <= low
    if high is not None:
        bad |= v > high if high_inclusive else v >= high
    if bad:
        raise ValueError(f"{name} must be a number{_range(low, high, low_inclusive, high_inclusive)}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _range(low: Any, high: Any, low_inclusive: bool = True, high_inclusive: bool = True) -> str:
    if low is None and high is None:
        return ""
    lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low}"
    hi = "inf)" if high is None else f"{high}" + ("]" if high_inclusive else ")")
    return f" in {lo}, {hi}"
