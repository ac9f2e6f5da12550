"""Hearth's simulated model engine: an OpenAI-compatible server that loads slowly, then streams.

Shipped in Hearth's image (`engine: sim`), so the chart can be tried on a cluster without a GPU;
the tests and the demo run it as a stand-in for vLLM, llama.cpp and Ollama.
"""
