"""ReviewService against in-memory fakes of its ports: who may decide, first one wins, and the
review table never says approved or rejected unless the waiting task was told so (issue 12:
"a reviewer's decision is written to the review table before SendTaskSuccess/Failure ... any
other error leaves 'approved' in the review table while the query ends rejected")."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest

from panelbrain.review.models import Principal
from panelbrain.review.ports import TaskCallbackUnavailableError
from panelbrain.review.service import (
    REJECTED_ERROR,
    DecisionError,
    ReviewService,
    ReviewSettings,
    principal_named,
)
from tests.unit.review_fakes import FakeStepFunctions, MemoryReviewStore, RecordingNotifier, throttled

NOW = 1_800_000_000.0
TOKEN = "token-1"
ALICE = Principal(identity="Alice@Example.com", source="email_link")
BOB = Principal(identity="bob@example.com", source="email_link")


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    service: ReviewService
    store: MemoryReviewStore
    sfn: FakeStepFunctions
    clock: Clock
    review_id: str

    def status(self) -> str:
        review = self.store.get(self.review_id)
        assert review is not None
        return review.status

    def task(self) -> str:
        return self.sfn.tasks[TOKEN].state

    def after(self, seconds: float) -> None:
        self.clock.now += seconds


def _service(store: MemoryReviewStore, sfn: FakeStepFunctions, clock: Clock) -> ReviewService:
    """The review service over the fakes, Alice and Bob on its allow-list."""
    return ReviewService(
        store=store,
        callbacks=sfn,
        notifier=RecordingNotifier(),
        signing_key=lambda: b"k" * 32,
        settings=ReviewSettings(
            allow_list=frozenset({"alice@example.com", "bob@example.com"}), base_url="http://x"
        ),
        clock=clock,
    )


@pytest.fixture
def world() -> World:
    store, sfn, clock = MemoryReviewStore(), FakeStepFunctions(), Clock()
    service = _service(store, sfn, clock)
    sfn.wait(TOKEN)
    review = service.open(
        query_id="q-1",
        level=1,
        token=TOKEN,
        synthesis={"question": "Q?", "dataset": "ces11", "answer": "A.", "confidence": 0.6},
        timeout_s=3600,
    )
    return World(service, store, sfn, clock, review.review_id)


def decide(w: World, principal: Principal = ALICE, action: str = "approve") -> None:
    w.service.decide(w.review_id, action, principal=principal, comment=" ok ", channel="email")  # type: ignore[arg-type]


# -- the happy paths -------------------------------------------------------------------------------


def test_an_approval_tells_the_task_then_records_who_approved(world: World) -> None:
    review = world.service.decide(
        world.review_id, "approve", principal=ALICE, comment=" ok ", channel="email"
    )
    assert world.task() == "succeeded"
    assert json.loads(world.sfn.tasks[TOKEN].output or "")["approver"] == "alice@example.com"
    assert review.status == "approved"
    assert review.decision is not None
    assert (
        review.decision.approver,
        review.decision.comment,
        review.decision.channel,
        review.decision.at,
    ) == (
        "alice@example.com",
        "ok",
        "email",
        NOW,
    )


def test_a_rejection_fails_the_task_with_the_error_the_workflow_catches(world: World) -> None:
    decide(world, action="reject")
    assert (world.task(), world.sfn.tasks[TOKEN].error) == ("failed", REJECTED_ERROR)
    assert world.status() == "rejected"


# -- who decides -------------------------------------------------------------------------------------


def test_a_signed_in_member_of_the_reviewer_group_decides_without_the_allow_list(world: World) -> None:
    carol = Principal(identity="carol@example.com", source="cognito", groups=frozenset({"reviewers"}))
    decide(world, carol)
    review = world.store.get(world.review_id)
    assert review is not None and review.decision is not None
    assert review.decision.approver == "carol@example.com"


@pytest.mark.parametrize(
    ("principal", "status", "says"),
    [
        (Principal(identity="carol@example.com", source="cognito"), 403, "nor in the 'reviewers' group"),
        # Only a verified user pool token carries groups; a channel cannot vouch for them.
        (
            Principal(identity="carol@example.com", source="slack", groups=frozenset({"reviewers"})),
            403,
            "allow-list",
        ),
        (Principal(identity="alice@example.com", source="system"), 403, "never decides"),
        (Principal(identity="   ", source="cli"), 400, "say who you are"),
    ],
)
def test_who_may_not_decide_is_refused_and_nothing_changes(
    world: World, principal: Principal, status: int, says: str
) -> None:
    with pytest.raises(DecisionError, match=says) as refused:
        decide(world, principal)
    assert refused.value.status == status
    assert (world.status(), world.task(), world.sfn.calls) == ("open", "waiting", [])


def test_an_empty_typed_name_is_refused_before_a_principal_exists() -> None:
    with pytest.raises(DecisionError, match="say who you are") as refused:
        principal_named("  ", "email_link")
    assert refused.value.status == 400


# -- first one wins ----------------------------------------------------------------------------------


def test_of_many_reviewers_deciding_at_once_exactly_one_decides(world: World) -> None:
    reviewers = [Principal(identity=f"r{i}@example.com", source="cli") for i in range(12)]
    world.service = ReviewService(
        **{
            **world.service.__dict__,
            "settings": ReviewSettings(
                allow_list=frozenset(p.identity for p in reviewers), base_url="http://x"
            ),
        }
    )
    start = threading.Barrier(len(reviewers))
    won: list[str] = []
    refused: list[tuple[int, str]] = []

    def click(i: int, principal: Principal) -> None:
        start.wait()
        try:
            decide(world, principal, "approve" if i % 2 else "reject")
            won.append(principal.identity)
        except DecisionError as exc:
            refused.append((exc.status, exc.message))

    threads = [threading.Thread(target=click, args=(i, p)) for i, p in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert len(refused) == len(reviewers) - 1
    assert all(status == 409 and won[0] in message for status, message in refused)
    # The task was told once, what the winner decided, and the table says the same.
    assert len([c for c in world.sfn.calls if c[0] != "heartbeat"]) == 1
    review = world.store.get(world.review_id)
    assert review is not None and review.decision is not None
    assert review.decision.approver == won[0]
    assert {"approved": "succeeded", "rejected": "failed"}[review.status] == world.task()


def test_a_second_click_while_the_first_is_delivered_is_told_who_decides(world: World) -> None:
    second: list[DecisionError] = []

    def meanwhile(kind: str, before: bool) -> None:
        if before and not second:
            with pytest.raises(DecisionError) as refused:
                decide(world, BOB, "reject")
            second.append(refused.value)

    world.sfn.fault = meanwhile
    decide(world, ALICE)
    assert second[0].status == 409
    assert "already being decided by alice@example.com (approve, via email" in second[0].message
    assert (world.status(), world.task()) == ("approved", "succeeded")
    with pytest.raises(DecisionError, match=r"already approved by alice@example\.com") as third:
        decide(world, BOB, "reject")
    assert third.value.status == 409


# -- the task could not be told -------------------------------------------------------------------


def test_a_task_that_stopped_waiting_answers_410_and_the_workflow_records_the_timeout(world: World) -> None:
    # GIVEN a task that timed out
    world.sfn.time_out(TOKEN)
    # WHEN a reviewer decides
    with pytest.raises(DecisionError, match="was not waiting for a decision") as gone:
        decide(world)
    # THEN nothing was decided, and the workflow's CloseReview records the timeout
    assert gone.value.status == 410
    assert world.status() == "open"
    world.service.close("q-1", 1, "no decision before the level-1 review timed out")
    review = world.store.get(world.review_id)
    assert review is not None and review.decision is not None
    assert (review.status, review.decision.approver) == ("timed_out", "system")


def reopen(w: World, token: str, attempt: int = 1) -> None:
    """The workflow retries its notifier (its first attempt failed): a new task, a new token."""
    w.sfn.wait(token)
    w.service.open(
        query_id="q-1",
        level=1,
        token=token,
        synthesis={"question": "Q?", "dataset": "ces11", "answer": "A.", "confidence": 0.6},
        timeout_s=3600,
        attempt=attempt,
    )


def test_a_decision_between_a_notifier_and_its_retry_can_be_given_again_to_the_retried_task(
    world: World,
) -> None:
    # GIVEN a notifier attempt that stored its token and then failed (its task is closed)
    world.sfn.time_out(TOKEN)
    # WHEN a reviewer decides before the retry runs, then the retry stores its token
    with pytest.raises(DecisionError) as gone:
        decide(world)
    reopen(world, "token-2")
    # THEN the first decision changed nothing, the review is open again, and deciding again
    # reaches the retried task (before: the review was settled timed out, the retry could not
    # re-open it, and its task waited for a decision nobody could give)
    assert gone.value.status == 410 and world.status() == "open"
    decide(world)
    assert (world.status(), world.sfn.tasks["token-2"].state) == ("approved", "succeeded")


def test_a_notifier_retried_while_a_decision_is_delivered_still_gets_the_decision(world: World) -> None:
    # GIVEN a decision on its way when the notifier's task fails and its retry stores a new token
    def retried(kind: str, before: bool) -> None:
        if before and "token-2" not in world.sfn.tasks:
            world.sfn.time_out(TOKEN)
            reopen(world, "token-2")

    world.sfn.fault = retried
    # WHEN the decision reaches the old token
    decide(world)
    # THEN it is given to the retried task (before: the retry could not store its token over
    # the claim, the review went back to the dead token, and the retried task timed out)
    assert (world.status(), world.sfn.tasks["token-2"].state) == ("approved", "succeeded")


def test_a_timed_out_notifier_attempt_landing_after_its_retry_leaves_the_retrys_token(world: World) -> None:
    # GIVEN the retry's token stored (attempt 1)
    world.sfn.time_out(TOKEN)
    reopen(world, "token-2", attempt=1)
    # WHEN the first attempt's write lands late (sent before Lambda stopped it)
    reopen(world, "token-late", attempt=0)
    # THEN the review keeps the retry's token, and a decision reaches the task that waits (before:
    # the late write put back a dead token, and the retried task timed out undecided)
    decide(world)
    assert (world.status(), world.sfn.tasks["token-2"].state) == ("approved", "succeeded")


def test_a_review_left_deciding_keeps_its_task_alive_until_the_claim_is_settled(world: World) -> None:
    # GIVEN a decider that claimed the review and died before telling the task
    world.sfn.fault = crash(when_before=True)  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        decide(world)
    world.sfn.fault = None
    assert world.status() == "deciding"
    # WHEN the sweep runs before the claim expires
    report = world.service.sweep()
    # THEN the waiting task still gets its heartbeat (before: only open reviews were beaten, and
    # a task whose review sat in a claim timed out on heartbeats before the claim was settled)
    assert report.heartbeats == 1 and world.sfn.tasks[TOKEN].heartbeats == 1
    assert (world.status(), world.task()) == ("deciding", "waiting")


def test_the_sweep_closes_a_review_whose_token_ended_only_once_past_its_timeout(world: World) -> None:
    # GIVEN a review whose task no longer waits on its token (a notifier retry may be under way)
    world.sfn.time_out(TOKEN)
    # WHEN the sweep runs before the review's timeout, and after it
    early = world.service.sweep()
    world.after(3600)
    late = world.service.sweep()
    # THEN it is left open for the retry's new token at first, and closed once past its timeout
    assert early.closed == [] and late.closed == [world.review_id]
    assert world.status() == "timed_out"


def test_a_throttled_callback_releases_the_claim_and_a_retry_decides(world: World) -> None:
    world.sfn.fault = throttled
    with pytest.raises(DecisionError, match="try again") as busy:
        decide(world)
    assert busy.value.status == 503
    assert (world.status(), world.task()) == ("open", "waiting")
    world.sfn.fault = None
    decide(world, BOB)
    assert (world.status(), world.task()) == ("approved", "succeeded")


def crash(when_before: bool) -> object:
    """A fault: the decider dies (a bug, its own timeout) before or after Step Functions took
    the callback; not an error any port declares."""

    def fault(kind: str, before: bool) -> None:
        if kind != "heartbeat" and before == when_before:
            raise RuntimeError("Task timed out after 10.00 seconds")

    return fault


@pytest.mark.parametrize("told", [False, True], ids=["crash-before-the-task-was-told", "crash-after"])
def test_a_decider_that_dies_never_leaves_approved_behind_and_the_sweeper_settles_it(
    world: World, told: bool
) -> None:
    world.sfn.fault = crash(when_before=not told)  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        decide(world)
    world.sfn.fault = None
    # Never "approved" before the sweeper knows the task was told.
    assert world.status() == "deciding"
    assert world.task() == ("succeeded" if told else "waiting")
    # Within the claim the sweeper leaves it to its decider.
    assert world.service.sweep().settled == []
    world.after(world.service.settings.claim_s)
    report = world.service.sweep()
    if told:
        # Step Functions refuses the repeat as it would a timeout; the sweeper waits for the
        # workflow's CloseReview, which never comes for a task that was told.
        assert (report.settled, world.status()) == ([], "deciding")
        world.after(world.service.settings.gone_grace_s)
        report = world.service.sweep()
    assert report.settled == [world.review_id]
    assert (world.status(), world.task()) == ("approved", "succeeded")
    review = world.store.get(world.review_id)
    assert review is not None and review.decision is not None
    assert (review.decision.approver, review.decision.at) == ("alice@example.com", NOW)


def test_an_unconfirmed_callback_answers_503_and_the_sweeper_settles_what_the_task_took(world: World) -> None:
    def answer_lost(kind: str, before: bool) -> None:
        if not before:
            raise TaskCallbackUnavailableError("ReadTimeoutError", "no answer", maybe_delivered=True)

    world.sfn.fault = answer_lost
    with pytest.raises(DecisionError, match="do not decide again") as unconfirmed:
        decide(world, action="reject")
    assert unconfirmed.value.status == 503
    world.sfn.fault = None
    assert (world.status(), world.task()) == ("deciding", "failed")
    world.after(world.service.settings.claim_s)
    world.service.sweep()
    world.after(world.service.settings.gone_grace_s)
    world.service.sweep()
    assert world.status() == "rejected"


@pytest.mark.parametrize("close_first", [True, False], ids=["closed-then-swept", "swept-then-closed"])
def test_a_task_that_timed_out_under_a_dead_claim_ends_timed_out_not_decided(
    world: World, close_first: bool
) -> None:
    world.sfn.fault = crash(when_before=True)  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        decide(world)
    world.sfn.fault = None
    world.after(world.service.settings.claim_s)
    world.sfn.time_out(TOKEN)
    if not close_first:
        world.service.sweep()  # finds the task gone before the workflow's CloseReview ran
    # The workflow's Catch on States.Timeout runs CloseReview: the timeout wins over the claim.
    world.service.close("q-1", 1, "no decision before the level-1 review timed out")
    world.after(world.service.settings.gone_grace_s)
    assert world.service.sweep().settled == []
    review = world.store.get(world.review_id)
    assert review is not None and review.decision is not None
    assert (review.status, review.decision.approver, world.task()) == ("timed_out", "system", "timed_out")


def test_a_throttled_heartbeat_is_reported_and_the_sweep_goes_on(world: World) -> None:
    world.sfn.fault = throttled
    report = world.service.sweep()
    assert report.heartbeats == 0
    assert report.errors and "rate exceeded" in report.errors[0]
    assert world.status() == "open"


def test_the_review_core_imports_neither_the_aws_adapters_nor_botocore() -> None:
    # A fresh interpreter: this one has imported both for other tests.
    probe = """
import importlib, pkgutil, sys
import panelbrain.review as review
for module in pkgutil.walk_packages(review.__path__, "panelbrain.review."):
    importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m.startswith(("panelbrain.aws", "botocore", "boto3"))))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_follow_up_in_review_shows_the_reviewer_the_conversation_so_far() -> None:
    from panelbrain.review.render import email_body, slack_message

    # GIVEN a follow-up ("what about Quebec?") whose plan names its turn and the readings before it
    sfn = FakeStepFunctions()
    service = _service(MemoryReviewStore(), sfn, Clock())
    history = [
        {"intent": "share", "measure": "abortion", "values": ["Yes"]},
        {"intent": "share", "measure": "abortion", "values": ["Yes"], "breakdown": "province"},
        {
            "intent": "share",
            "measure": "abortion",
            "values": ["Yes"],
            "breakdown": "province",
            "filters": [{"column": "gender", "values": ["Female"]}],
        },
    ]
    plan = {"conversation": {"conversation_id": "c-0123456789abcdef", "turn": 4, "history": history}}
    sfn.wait(TOKEN)
    synthesis = {"question": "what about Quebec?", "dataset": "ces11", "answer": "A.", "confidence": 0.6}
    # WHEN it lands in review
    review = service.open(
        query_id="q-1", level=1, token=TOKEN, synthesis={**synthesis, "plan": plan}, timeout_s=3600
    )
    # THEN the reviewer's e-mail lists the earlier turns' readings, oldest first
    assert review.conversation == [
        "turn 1: share of abortion in Yes",
        "turn 2: share of abortion in Yes; by province",
        "turn 3: share of abortion in Yes; by province; gender in Female",
    ]
    body = email_body(review, approve_url="", reject_url="", page_url="http://x/reviews")
    assert "Earlier in this conversation" in body and "turn 3: share of abortion in Yes; by province" in body
    slack = json.dumps(slack_message(review, page_url="http://x/reviews"))
    assert "Earlier in this conversation" in slack and "turn 1: share of abortion in Yes" in slack
