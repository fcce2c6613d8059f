"""decide(): the latency of one decision in process, against pycasbin's `enforce()` on an
equivalent role x purpose x category model holding the same rules."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import casbin
from casbin.model import FastModel, Model

from bench.harness import Result, Run, benchmark
from charter.access.decide import PersonState, decide
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import load_policy
from charter.settings import BUNDLED_POLICY

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""

NO_CHOICE = PersonState(kind="user")
OPTED_OUT = PersonState(choices={"purpose:promotional": False}, kind="user")
GPC = PersonState(choices={"gpc": True}, kind="user")
APPLICANT = PersonState(kind="job_applicant")  # recruiters use applicants' data only
# (role, purpose, category, person, the answer's code): allowed and refused cases, as a
# service asks them.
QUERIES: tuple[tuple[str, str, str, PersonState, str], ...] = (
    ("service_client", "promotional", "contact.email", NO_CHOICE, "allowed"),  # opt-out basis
    ("service_client", "promotional", "contact.email", OPTED_OUT, "opted_out"),
    ("service_client", "promotional", "cookie.id", GPC, "gpc_opt_out"),
    ("support_agent", "service_support", "contact.email", NO_CHOICE, "allowed"),  # service
    ("marketing", "billing", "billing.payment", NO_CHOICE, "role_may_not_use_purpose"),
    (
        "service_client",
        "promotional",
        "billing.payment",
        NO_CHOICE,
        "purpose_may_not_use_category",
    ),
    ("recruiter", "described_obligations", "employment.application", APPLICANT, "allowed"),
    ("privacy_officer", "fraud_and_legal", "network.ip", NO_CHOICE, "allowed"),  # last role
)
REPEAT = 125  # QUERIES x REPEAT = 1,000 calls per timed batch of decide()
CHARTER_BATCHES = 300
CASBIN_BATCHES = 5
FAST_BATCHES = 100


def allowed_triples(policy: CompiledPolicy) -> list[tuple[str, str, str]]:
    """Every (role, purpose, category) the compiled policy allows, in a stable order."""
    return [
        (role, purpose, category)
        for role, purposes in sorted(policy.role_purposes.items())
        for purpose in sorted(purposes)
        for category in sorted(policy.purpose_categories[purpose])
    ]


def _enforcer(triples: Sequence[tuple[str, str, str]], *, fast: bool = False) -> Any:
    """A casbin enforcer holding `triples`; `fast` indexes them on all three fields."""
    key_order = [0, 1, 2]
    model = FastModel(key_order) if fast else Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = (
        casbin.FastEnforcer(model, cache_key_order=key_order) if fast else casbin.Enforcer(model)
    )
    enforcer.add_policies([list(triple) for triple in triples])
    return enforcer


def _per_call_ns(call: Callable[[], None], calls: int, batches: int) -> float:
    """The median over `batches` of (time of one batch / calls in it), in nanoseconds."""
    call()  # warm-up
    samples = []
    for _ in range(batches):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


@benchmark("decide.p50_us")
def decide_latency(run: Run) -> Iterator[Result]:
    """Per-call time of `decide()`, as the median of batches of 1,000 mixed calls."""
    policy = compile_policy(load_policy(BUNDLED_POLICY))
    queries = [
        (role, purpose, (category,), person) for role, purpose, category, person, _ in QUERIES
    ]
    requests = [(role, purpose, category) for role, purpose, category, _, _ in QUERIES]
    charter_batch = queries * REPEAT
    casbin_batch = requests * REPEAT
    triples = allowed_triples(policy)

    answers = [decide(policy, *query).code for query in queries]
    if answers != [code for *_, code in QUERIES]:
        raise RuntimeError(f"decide() does not answer as the benchmark expects: {answers}")
    enforcer = _enforcer(triples)
    fast = _enforcer(triples, fast=True)
    rules_say = [request in set(triples) for request in requests]
    for model in (enforcer, fast):
        if [model.enforce(*request) for request in requests] != rules_say:
            raise RuntimeError("the casbin model does not answer as the policy's rules say")

    def charter_calls() -> None:
        for role, purpose, categories, person in charter_batch:
            decide(policy, role, purpose, categories, person)

    def casbin_calls(enforce: Callable[..., bool]) -> Callable[[], None]:
        def calls() -> None:
            for sub, obj, act in casbin_batch:
                enforce(sub, obj, act)

        return calls

    run.step(f"decide(): {CHARTER_BATCHES} batches of {len(charter_batch):,} calls")
    charter_ns = _per_call_ns(charter_calls, len(charter_batch), CHARTER_BATCHES)
    run.step(f"casbin enforce(): {CASBIN_BATCHES} batches of {len(casbin_batch):,} calls")
    casbin_ns = _per_call_ns(casbin_calls(enforcer.enforce), len(casbin_batch), CASBIN_BATCHES)
    run.step(f"casbin FastEnforcer: {FAST_BATCHES} batches of {len(casbin_batch):,} calls")
    fast_ns = _per_call_ns(casbin_calls(fast.enforce), len(casbin_batch), FAST_BATCHES)
    allowed = answers.count("allowed")
    yield Result(
        "decide.p50_us",
        charter_ns / 1000,
        "us",
        higher_is_better=False,
        anchor="casbin.enforce",
        anchor_value=casbin_ns / 1000,
        target=5,
        note=f"median per-call time over batches of {len(charter_batch):,} calls cycling "
        f"{len(QUERIES)} questions ({allowed} allowed, {len(QUERIES) - allowed} refused: "
        "opted out, GPC, role may not use purpose, purpose may not use category), loop "
        f"included. Anchor: casbin.Enforcer.enforce(role, purpose, category) on a model "
        f"holding the {len(triples)} (role, purpose, category) triples the compiled OMNI "
        f"policy allows, same questions (it knows nothing of choices). Ratio target >= 30. "
        f"For context, casbin.FastEnforcer indexed on all three fields: "
        f"{fast_ns / 1000:.2f} us per call.",
    )
