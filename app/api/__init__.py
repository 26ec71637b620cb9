"""The FastAPI application: `create_app(settings)`; routes in app/api/routes."""
