"""Tasks: each a function taking the composed config and returning a dict of metrics."""
