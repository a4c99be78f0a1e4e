"""What runs on every request, and the server that runs the app.

Design
------
- ``auth``: who is asking and may they (``@allow``), sessions, CSRF, first-start setup.
- ``security``: security headers and request-size limits.
- ``compress``: gzip for text answers.
- ``serve``: Waitress, the access log, LAN addresses and a clean shutdown.
"""
