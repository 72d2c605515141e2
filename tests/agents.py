"""The template's agent functions: the pipeline Tasks that run on provisioned concurrency and
deploy behind a pre-traffic check."""

AGENTS = (
    "BrainPlanFunction",
    "SqlWriterFunction",
    "WeightApplierFunction",
    "DataProcessorFunction",
    "BrainSynthesiseFunction",
    "FormatterFunction",
)
