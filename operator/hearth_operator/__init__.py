"""Hearth's operator: places ModelDeployments on GPUs and writes the truth into their status."""
