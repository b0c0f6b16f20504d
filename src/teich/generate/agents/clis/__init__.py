"""One module per agent CLI; each defines ``PROVIDER``, an :class:`~teich.generate.agents.provider.AgentCli`
registered as the provider of its name (see :mod:`teich.generate.providers`)."""
