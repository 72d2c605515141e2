"""Human review: signed decision links, Slack, heartbeats, escalation and the reviewer page.

Only the standard library and pydantic are imported here and below (no pandas, no langchain):
the review functions are small API-facing Lambdas.
"""
