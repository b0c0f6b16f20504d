"""``teich view``: a dataset in the browser: its rows, each row's conversation, and each row's tokens
coloured by span kind and trained or masked, served locally or exported as a static site."""

from teich.view.data import ViewData
from teich.view.site import export_site, make_server, serve

__all__ = ["ViewData", "export_site", "make_server", "serve"]
