"""The engine as a local HTTP service: job queue, token auth, live preview page.

``run.serve()`` is ``clipasso serve``; ``app.create_app()`` builds the ASGI app over a
``jobs.JobQueue``. The API is documented by the app itself (``/openapi.json``).
"""
