"""`menuflow studio`: a local web page to try templates in flowsvc's sandbox, as a WhatsApp chat."""

from menuflow.studio.app import create_app

__all__ = ["create_app"]
