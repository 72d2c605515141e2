"""The agents of the pipeline, one module each; each takes and returns typed models.

Lambda handlers in :mod:`panelbrain.functions` are thin adapters over these. The bedrock
provider (and langchain) loads only when a plan asks for it.
"""
