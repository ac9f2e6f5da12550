"""Hearth's router: an OpenAI-compatible endpoint that shows a cold model's warmup as it happens."""
