"""The WSGI entry point gunicorn loads; configuration comes from SHELTER_* variables."""

from shelter.app import create_app

application = create_app()
