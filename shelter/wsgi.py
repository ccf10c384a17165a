"""The WSGI entry point gunicorn loads; configuration comes from SHELTER_* variables."""

from .app import create_app

application = create_app()
