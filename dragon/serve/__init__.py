"""The HTTP layer: a FastAPI application served by a Ray Serve deployment."""
