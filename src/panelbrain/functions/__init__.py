"""Lambda entry points, one small module each: parse the event, call the agent, return JSON."""
