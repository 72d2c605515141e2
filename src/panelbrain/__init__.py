"""panelbrain."""
