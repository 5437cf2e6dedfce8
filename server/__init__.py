"""Yihao's Flask application: app factory, tickets, API, pages and command line.

``server.core`` is the infrastructure the domain packages (``hierarchy``, ``grids``,
``escalation``) build on; it imports nothing else from ``server`` so those packages never
reach back into the application's routes.
"""
