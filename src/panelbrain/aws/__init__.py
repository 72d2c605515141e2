"""AWS adapters: each an interface with a boto3 implementation; clients injected or built late."""
