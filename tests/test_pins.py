"""Every package Charter installs is pinned: `constraints.txt` names each runtime and
development dependency, and theirs, at the version installed (so `pip-audit` audits what
runs, and two installs get the same code)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        pin = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip())
        assert pin is not None, f"not a pin: {line!r}"
        found[canonicalize_name(pin[1])] = pin[2]
    return found


def installed_requirements(extras: set[str]) -> dict[str, str]:
    """Every distribution that installing charter with `extras` brings, with its version."""
    seen: dict[str, str] = {}
    pending = [(Requirement(f"charter[{','.join(sorted(extras))}]"), extras)]
    while pending:
        requirement, wanted = pending.pop()
        name = canonicalize_name(requirement.name)
        distribution = metadata.distribution(name)
        if name != "charter":
            if name in seen:
                continue
            seen[name] = distribution.version
        for line in distribution.requires or []:
            child = Requirement(line)
            if child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                pending.append((child, set(child.extras)))
    return seen


def test_every_dependency_installed_is_pinned_at_its_version() -> None:
    pinned = pins()
    needed = installed_requirements({"dev"})

    assert {"orjson", "email-validator", "pip-audit", "uvicorn"} <= set(needed)
    unpinned = sorted(set(needed) - set(pinned))
    assert unpinned == [], "add these to constraints.txt"
    drifted = {n: (v, pinned[n]) for n, v in needed.items() if pinned[n] != v}
    assert drifted == {}, "installed (left) and pinned (right) versions differ"
