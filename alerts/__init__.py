"""Pure threat scoring, alert rules, CAP rendering and delivery transports (no DB sessions)."""
