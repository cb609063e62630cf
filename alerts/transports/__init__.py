"""Delivery transports: send one email or one webhook and report an Outcome (no DB access)."""
