"""`make audit`: pip-audit over the pins of a requirements file (constraints.txt).

Fails when a pinned package has a known vulnerability, or when pip-audit fails for any other
reason (a malformed pin, a crash). Passes, saying that the audit was skipped, when the
advisory database cannot be reached: a connection that fails, or an index that answers for
none of the pins (a mirror that serves packages but not advisories). pip-audit alone would
fail on the first and report "no known vulnerabilities" on the second.

    python tools/dependency_audit.py constraints.txt [pip-audit options...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# How pip-audit's traceback names a request that never got an answer, or got an error of
# the service (PyPI's feed answering 5xx) instead of one.
_UNREACHABLE = (
    "pip_audit._service.interface.ServiceError",
    "requests.exceptions.ConnectionError",
    "requests.exceptions.ProxyError",
    "requests.exceptions.ConnectTimeout",
    "requests.exceptions.ReadTimeout",
    "requests.exceptions.SSLError",
    "Could not connect to",
)
# Seconds pip-audit waits for each answer of the advisory service.
TIMEOUT_S = 15


def _audit(
    requirements: Path, options: list[str], report: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        # Every package is pinned in the file already: audit those versions, install nothing.
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--timeout",
        str(TIMEOUT_S),
        "--format",
        "json",
        "--output",
        str(report),
        *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _verdict(result: dict[str, Any], returncode: int, stderr: str) -> int:
    packages = result.get("dependencies", [])
    vulnerable = [p for p in packages if p.get("vulns")]
    skipped = [p["name"] for p in packages if "skip_reason" in p]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            print(f"pip-audit: {package['name']} {package['version']}: {vuln['id']} ({fixed})")
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} pinned package(s) with known vulnerabilities")
        return 1
    if returncode != 0:
        print(stderr, file=sys.stderr)
        return returncode
    if packages and len(skipped) == len(packages):
        print(
            f"pip-audit: skipped: the advisory database answered for none of the "
            f"{len(packages)} pins (an index that does not serve advisories)"
        )
        return 0
    if skipped:
        print(f"pip-audit: not found in the advisory database: {', '.join(skipped)}")
    print(f"pip-audit: no known vulnerability in {len(packages) - len(skipped)} pinned packages")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    requirements, options = Path(argv[0]), argv[1:]
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        done = _audit(requirements, options, report)
        if not report.exists():
            if any(marker in done.stderr for marker in _UNREACHABLE):
                last = done.stderr.strip().splitlines()[-1][:200]
                print(f"pip-audit: skipped: the advisory database could not be reached ({last})")
                return 0
            print(done.stderr, file=sys.stderr)
            return done.returncode or 1
        result = json.loads(report.read_text(encoding="utf-8"))
    return _verdict(result, done.returncode, done.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
