"""Check a rendered engine or router command line against the pinned release's own argument list
(tests/controllers/data/engine_flags.json, with its source)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FLAGS_FILE = Path(__file__).parent / "data" / "engine_flags.json"


@cache
def accepted(engine: str) -> dict[str, Any]:
    """The recorded parser of ``engine`` (an engine or a router): version, source, positional arguments
    and flags."""
    return json.loads(FLAGS_FILE.read_text())[engine]


def problems(engine: str, args: list[str]) -> list[str]:
    """What the pinned release's parser would reject in ``args``: unknown flags, a missing value,
    a value outside the flag's choices, or more positional arguments than it takes."""
    parser = accepted(engine)
    flags, positional_left = parser["flags"], len(parser["positional"])
    found: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("-"):
            if positional_left == 0:
                found.append(f"unexpected positional argument {token!r}")
            positional_left -= 1
            i += 1
            continue
        flag, _, inline = token.partition("=")
        spec = flags.get(flag)
        if spec is None:
            found.append(f"{flag} is not a {engine} {parser['version']} flag")
            i += 1
            continue
        if not spec["value"]:
            i += 1
            continue
        nargs = spec.get("nargs")
        if nargs in ("+", "*") and not inline:
            values = []
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if nargs == "+" and not values:
                found.append(f"{flag} needs a value")
            continue
        if inline:
            value, i = inline, i + 1
        elif i + 1 < len(args):
            value, i = args[i + 1], i + 2
        else:
            found.append(f"{flag} needs a value")
            break
        if "choices" in spec and value not in spec["choices"]:
            found.append(f"{flag} {value}: not one of {', '.join(spec['choices'])}")
    return found
