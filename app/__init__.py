"""The Sentinel-NPS service: HTTP API, web console, database, scheduler and CLI."""
