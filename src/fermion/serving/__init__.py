"""Serving: registered models behind an HTTP API (REST, KServe V2, OpenAI embeddings), with
adaptive batching, API keys, hot swap of versions, health and Prometheus metrics."""
