"""`animesis paint`: a local web app where a person paints a label map and sees the character painted live."""

from animesis.app.server import create_app, serve

__all__ = ["create_app", "serve"]
