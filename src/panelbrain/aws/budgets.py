"""Size budgets: what may travel inline in a workflow state or a DynamoDB item.

AWS's two hard caps, neither of which a workflow can recover from at run time:

- A Step Functions state's input or output is at most 256 KiB (262,144 bytes) of UTF-8 JSON
  ("Maximum input or output size for a task, state, or execution",
  https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html; the history
  events' ``input``/``output`` "Maximum length of 262144", expressed as bytes in UTF-8,
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_StateExitedEventDetails.html).
  Going over fails the task with ``States.DataLimitExceeded``, which ``States.ALL`` does not
  catch: the execution fails and no Persist state runs.
- A DynamoDB item is at most 400 KB, with 1 KB = 1,024 bytes, counting attribute names and
  values in UTF-8 (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html,
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).

A state carries more than one payload at once, so the budget is per payload, chosen so that
everything that travels together adds up to well under the state limit. The largest state of
the Express pipeline is BrainSynthesise's output, which keeps its whole input beside its result:

    query                      <=  13 KiB   (QueryInput: a question of at most 2,000 characters,
                                              8,000 bytes of UTF-8 at worst, and its options)
    settings                   <=   1 KiB   (five numbers from the template)
    plan                       <=  PLAN_BYTES               24 KiB   (the plan function fails above it)
    three worker results       <=  3 x WORKER_INLINE_BYTES  96 KiB   (larger outputs go to S3)
    synthesis                  <=  SYNTHESIS_BYTES          64 KiB   (its table, then its weighting,
                                                                      go to S3 until it fits)
    keys and brackets          <=   1 KiB
                                  ---------
                                  199 KiB of 256 KiB: 57 KiB (22 %) to spare.

Later states drop the plan and the workers (the Compact state) and carry the synthesis at most
twice (StartReview and LowConfidence put it in their terminal record beside it): 13 + 1 + 2 x 64
= 142 KiB; PersistAnswered carries the synthesis and the markdown (MARKDOWN_INLINE_BYTES, 32 KiB)
beside Persist's short reply: 111 KiB. The review workflow carries one synthesis and one markdown.

A query item holds the persisted result (at most RESULT_INLINE_BYTES, 160 KiB: the markdown and
the synthesis fit without offloading, 96 KiB), the request (13 KiB), the reason (at most the
synthesis's reasons) and a status history of a few hundred bytes per change: under 250 KiB of
the 400 KiB an item may hold. A result cache item holds the same result.
"""

from __future__ import annotations

import json
from typing import Any

from panelbrain.errors import PayloadTooLargeError

KIB = 1024
STATE_LIMIT_BYTES = 256 * KIB
ITEM_LIMIT_BYTES = 400 * KIB

PLAN_BYTES = 24 * KIB
WORKER_INLINE_BYTES = 32 * KIB
SYNTHESIS_BYTES = 64 * KIB
MARKDOWN_INLINE_BYTES = 32 * KIB
RESULT_INLINE_BYTES = 160 * KIB
# When a table goes to S3, its first rows travel with the claim check (the reviewer's e-mail
# and page show them); counted inside SYNTHESIS_BYTES.
TABLE_PREVIEW_BYTES = 8 * KIB


def json_bytes(value: Any) -> int:
    """Size of ``value`` as Step Functions and DynamoDB count it: its JSON in UTF-8."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def ensure_within(value: Any, budget: int, what: str) -> None:
    """Refuse ``value`` (a catchable error, unlike Step Functions' own) when over ``budget``."""
    size = json_bytes(value)
    if size > budget:
        raise PayloadTooLargeError(
            f"{what} is {size:,} bytes of JSON; at most {budget:,} may travel in a workflow state "
            "(see panelbrain.aws.budgets): shorten the question or narrow what it asks for",
            bytes=size,
            budget=budget,
        )
