"""What both FastAPI apps share at the HTTP edge: the bearer-token dependency, the JSON error
policy, HTTP metrics and the OpenAPI error declarations."""
