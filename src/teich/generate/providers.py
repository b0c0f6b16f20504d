"""The generation-provider protocol and its registry.

A provider runs a config's prompts and keeps their outputs (:class:`Provider`); ``agent.provider``
names the one a config uses. The registry (:data:`PROVIDERS`) holds factories: something with a
``name`` that, called with the :class:`~teich.generate.config.Config`, gives the provider. ``chat``
is :class:`~teich.generate.chat.ChatProvider` (the ``PROVIDER`` of :mod:`teich.generate.chat`); each
agent CLI is one module in :mod:`teich.generate.agents.clis` whose ``PROVIDER`` is an
:class:`~teich.generate.agents.provider.AgentCli`. So adding an agent CLI is adding one module there;
``PROVIDERS.registered(factory)`` adds a provider for the length of a block.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from teich.generate.prompts import PromptSpec
from teich.registry import Registry


class Provider(Protocol):
    """Runs one config's prompts, keeping each output as soon as its prompt finishes."""

    @property
    def attempts(self) -> int:
        """Whole runs to try per prompt: 1 where the provider retries its own requests."""
        ...

    def existing(self) -> int:
        """How many outputs an earlier run left (a run without ``--resume`` refuses to add to them)."""
        ...

    def done_keys(self) -> set[str]:
        """The keys (:attr:`PromptSpec.key`) of the prompts that have a complete output."""
        ...

    def recover(self) -> None:
        """Move the outputs an earlier run could not write into place."""
        ...

    async def run(self, spec: PromptSpec) -> dict[str, Any]:
        """Run one prompt and its follow-ups and keep the output; return its row's metadata (``usage``,
        ``cost``). Raises :class:`~teich.errors.GenerationError` when the prompt failed."""
        ...

    async def close(self) -> None:
        """Release what the runs held (connections)."""
        ...

    def rows(self) -> list[dict[str, Any]]:
        """The outputs as standalone rows (for the dataset card)."""
        ...

    def output_files(self) -> list[str]:
        """The output files, relative to the output folder (what is published)."""
        ...


@runtime_checkable
class SplitProvider(Provider, Protocol):
    """A provider whose :meth:`Provider.run` splits in two, so that prompts can run on other machines
    (``execution.backend: ray``) while this process alone writes the outputs."""

    async def produce(self, spec: PromptSpec) -> Any:
        """Run one prompt and its follow-ups, writing nothing to the output; the result must pickle.
        Raises :class:`~teich.errors.GenerationError` when the prompt failed."""
        ...

    def keep(self, spec: PromptSpec, produced: Any) -> dict[str, Any]:
        """Keep what :meth:`produce` returned for ``spec`` in the output; return its row's metadata."""
        ...


class ProviderFactory(Protocol):
    """A registered provider: the name ``agent.provider`` gives it, and the provider for a config."""

    @property
    def name(self) -> str: ...

    def __call__(self, config: Any) -> Provider:
        """The provider for ``config``, a :class:`~teich.generate.config.Config` (not named here: the
        config validates ``agent.provider`` against this registry)."""
        ...


#: Every provider, ``chat`` and the agent CLIs, by name.
PROVIDERS: Registry[ProviderFactory] = Registry("PROVIDER", ("teich.generate.chat", "teich.generate.agents.clis"))
