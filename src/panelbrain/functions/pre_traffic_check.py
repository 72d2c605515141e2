"""PreTrafficCheck function: CodeDeploy's PreTraffic hook for the pipeline's agents.

Asks the known question of the versions being deployed (panelbrain.aws.pre_traffic) and reports
the verdict to CodeDeploy, which shifts the alias only on ``Succeeded``. Every outcome is
reported, a crash of the check included: an unreported hook holds the deployment until CodeDeploy
gives up on it. CodeDeploy may invoke it only because its name starts with ``CodeDeployHook_``
(template.yaml; docs/deploy.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from panelbrain.aws import clients
from panelbrain.aws.pre_traffic import lambda_invoker, query_id_for, report, run_question, versions_from

logger = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        outcome = run_question(
            lambda_invoker(clients.client("lambda")),
            versions_from(os.environ),
            query_id=query_id_for(str(event["DeploymentId"])),
            provider=os.environ.get("PRE_TRAFFIC_PROVIDER", "offline"),
        )
    except Exception as exc:  # any failure fails the deployment, and says why in the logs
        logger.error("pre-traffic check failed for deployment %s: %s", event.get("DeploymentId"), exc)
        report(clients.client("codedeploy"), event, succeeded=False)
        return {"status": "Failed", "reason": f"{type(exc).__name__}: {exc}"}
    report(clients.client("codedeploy"), event, succeeded=True)
    return {"status": "Succeeded", "route": outcome.route, "invoked": list(outcome.invoked)}
