"""Tests against a real vLLM server (see conftest.py and docs/vllm-test-server.md)."""
