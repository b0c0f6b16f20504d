"""One module per sandbox backend; each defines ``BACKEND`` (see :mod:`teich.generate.agents.sandbox`)."""
