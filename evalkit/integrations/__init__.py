"""Integrations with other libraries' extension points (sentence-transformers' evaluators)."""
