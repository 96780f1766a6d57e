"""The vault's door: the FastAPI app, authentication, JSON errors, the routes and the reviewer page.

Rule of this room: routes parse and authenticate, then call the service; no route computes on rows itself.
"""
