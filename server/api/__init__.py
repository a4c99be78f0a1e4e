"""The tablets' JSON API under ``/api/v1`` and its OpenAPI description.

Design
------
- ``tablet``: the routes (health, me, progress, search, packs for other boxes).
  Each route validates what it is sent, calls a service and answers the one JSON
  error shape on failure (:func:`passerelle.server.errors.api_error`).
- ``openapi``: the OpenAPI 3.1 description, written by hand next to the routes
  because it is a contract; a test fails when a route is missing from it.
"""
