"""API security: who is calling (API keys), what they may do (ownership, limits), and what they did (audit)."""
