"""The local engine refuses, at deploy, templates AWS would refuse at stack creation.

Each test starts the engine on a copy of ``template.yaml`` with one deliberate break (its own
emulator, one after another: an engine per copy).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from panelbrain.local.engine import LocalEngine, find_template
from panelbrain.local.template import TemplateError

STEP_SCALING = """
  BrainPlanFunctionStepUp:
    Type: AWS::ApplicationAutoScaling::ScalingPolicy
    Properties:
      PolicyName: !Sub ${AWS::StackName}-BrainPlanFunction-step-up
      PolicyType: StepScaling
      ScalingTargetId: !Ref BrainPlanFunctionConcurrency
      StepScalingPolicyConfiguration:
        AdjustmentType: ChangeInCapacity
        Cooldown: 180
        StepAdjustments:
          - {MetricIntervalLowerBound: 0, ScalingAdjustment: 5}
"""


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    """``template.yaml`` (with the state machine files it names) where ``old`` became ``new``."""
    source = find_template()
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the template no longer has exactly one {old!r}"
    shutil.copytree(source.parent / "statemachines", tmp_path / "statemachines")
    copy = tmp_path / "template.yaml"
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


def test_step_scaling_on_provisioned_concurrency_is_refused_at_deploy(tmp_path: Path) -> None:
    # GIVEN the template with a StepScaling policy on an agent's provisioned concurrency
    copy = broken_copy(
        tmp_path, "\n  BrainPlanFunctionUtilisation:\n", f"{STEP_SCALING}\n  BrainPlanFunctionUtilisation:\n"
    )
    # WHEN the engine deploys it THEN it refuses, naming the policy and what Lambda supports
    with pytest.raises(TemplateError) as refusal, LocalEngine.running(template_path=copy):
        pass
    message = str(refusal.value)
    assert message.startswith(
        "BrainPlanFunctionStepUp (StepScaling on lambda target function:BrainPlanFunction:live)"
    )
    assert "TargetTrackingScaling" in message and "ScheduledActions" in message


def test_waiting_for_a_token_in_an_express_machine_is_refused_at_deploy(tmp_path: Path) -> None:
    copy = broken_copy(
        tmp_path,
        "      Type: STANDARD\n      DefinitionUri: statemachines/human_review.asl.json",
        "      Type: EXPRESS\n      DefinitionUri: statemachines/human_review.asl.json",
    )
    with (
        pytest.raises(ClientError, match="HumanReviewStateMachine") as refusal,
        LocalEngine.running(template_path=copy),
    ):
        pass
    assert refusal.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "does not support '.waitForTaskToken' service integration" in str(refusal.value)


def test_queue_maximum_message_size_from_the_template_is_held(tmp_path: Path) -> None:
    # A queue may set MaximumMessageSize below SQS's 1 MiB, e.g. to Step Functions' 256 KiB.
    copy = broken_copy(
        tmp_path,
        "      VisibilityTimeout: 300\n",
        "      VisibilityTimeout: 300\n      MaximumMessageSize: 262144\n",
    )
    with LocalEngine.running(template_path=copy) as engine:
        sqs, url = engine.clients["sqs"], engine.template.resolve({"Ref": "QueryQueue"})
        with pytest.raises(ClientError, match="Message must be shorter than 262144 bytes"):
            sqs.send_message(QueueUrl=url, MessageBody="x" * 262_145)
        sqs.send_message(QueueUrl=url, MessageBody="x" * 262_144)
