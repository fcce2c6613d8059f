"""Starting Charter: open the database, apply migrations, load and record the policy.

`charter init`, `charter serve` and the benchmarks share these steps; each failure is a
one-line reason (`StartupError`), never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

from charter import migrations
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import Database, DatabaseUnavailable
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import PolicyError, load_policy
from charter.settings import BUNDLED_POLICY, Settings


class StartupError(Exception):
    """Charter cannot start; the message says why in one line (or one line per problem)."""


@dataclass
class Booted:
    db: Database
    policy: CompiledPolicy


def prepare_home(settings: Settings) -> list[str]:
    """Create CHARTER_HOME and its policy file if missing; say what was done."""
    done = []
    if not settings.home.exists():
        settings.home.mkdir(parents=True)
        done.append(f"created {settings.home}")
    if not settings.policy_file.exists():
        if not BUNDLED_POLICY.exists():
            raise StartupError(f"no policy file at {settings.policy_file} and none bundled to copy")
        settings.policy_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUNDLED_POLICY, settings.policy_file)
        done.append(f"copied the OMNI policy to {settings.policy_file}")
    return done


def load_compiled(settings: Settings) -> tuple[CompiledPolicy, str]:
    """The policy in force, compiled, and the SHA-256 of its file."""
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        raise StartupError(str(exc)) from None
    digest = hashlib.sha256(settings.policy_file.read_bytes()).hexdigest()
    return compile_policy(policy), digest


def open_database(settings: Settings) -> Database:
    try:
        db = Database.connect(settings.database_url)
    except DatabaseUnavailable as exc:
        raise StartupError(str(exc)) from None
    migrations.upgrade(db.engine)
    return db


def boot(settings: Settings, clock: Clock) -> Booted:
    """Open and migrate the database, load the policy, and audit that it was loaded."""
    compiled, digest = load_compiled(settings)
    db = open_database(settings)
    with db.writing() as session:
        record(session, clock, Event(
            f"process:{os.getpid()}", "policy:version:loaded", f"policy:{compiled.version}",
            details={"sha256": digest},
        ))
    return Booted(db=db, policy=compiled)
