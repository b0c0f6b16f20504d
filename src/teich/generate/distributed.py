"""``execution.backend: ray``: each prompt attempt is a Ray task on the cluster; its result comes back
to this process, which alone writes the output (append-only rows, resume, failures and card as for a
local run).

Tasks are spread over the cluster's nodes (``SPREAD``) and take no CPU reservation: a prompt mostly
waits on the model. At most ``concurrency`` per alive node are in flight, counted when the run starts.
A worker that dies mid-prompt has its task retried by Ray (``RETRIES`` times) and then counts as a
failed attempt; a driver that dies loses only the prompts in flight (``--resume`` finishes the rest).
The provider, as registered in this process, goes to the workers pickled with the config; an agent's
run sends back its session file and packed workspace (:class:`~teich.generate.agents.provider.AgentRun`).
Ray is optional (``pip install "teich[ray]"``) and imported only here, on first use.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from teich.errors import ConfigError, GenerationError, TeichError, first_line
from teich.generate.config import Config
from teich.generate.prompts import PromptSpec
from teich.generate.providers import PROVIDERS, Provider, ProviderFactory, SplitProvider

RETRIES = 3  # times Ray reruns a task whose worker died
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps this process's addresses on 127.0.0.1


class RayExecutor:
    """Runs prompt attempts as Ray tasks and keeps their results through ``provider``."""

    def __init__(self, config: Config, provider: SplitProvider, slots: int) -> None:
        import ray

        self.provider = provider
        self.slots = slots
        self._config = ray.put(config.for_worker())
        self._factory = ray.put(PROVIDERS[config.agent.provider])  # one registered here runs there too
        self._task = ray.remote(_produce).options(
            num_cpus=0, max_retries=RETRIES, scheduling_strategy="SPREAD", name="teich-prompt"
        )

    async def run(self, spec: PromptSpec) -> dict[str, Any]:
        """One attempt of ``spec`` on the cluster, its output kept here."""
        from ray.exceptions import RayError

        try:
            failed, produced = await self._task.remote(self._config, self._factory, spec)
        except RayError as error:  # the task's workers died (RETRIES times), or the cluster went away
            raise GenerationError(f"ray: {first_line(error)}") from None
        if failed:
            raise GenerationError(*produced)
        return self.provider.keep(spec, produced)


@contextmanager
def execution(
    config: Config, provider: Provider, concurrency: int | None = None
) -> Iterator[tuple[Callable[[PromptSpec], Awaitable[dict[str, Any]]] | None, int | None]]:
    """For the block, how ``execution.backend`` runs prompt attempts and how many at once: ``(None,
    concurrency)`` for ``local`` (the provider's own ``run``), the Ray executor and its slots for ``ray``."""
    if config.execution.backend == "local":
        yield None, concurrency
        return
    with ray_executor(config, provider, concurrency) as executor:
        yield executor.run, executor.slots


@contextmanager
def ray_executor(config: Config, provider: Provider, concurrency: int | None = None) -> Iterator[RayExecutor]:
    """Connected to the cluster at ``execution.address`` (else ``RAY_ADDRESS``, else one started here)
    for the block: an executor with ``concurrency`` (default ``config.concurrency``) slots per alive node."""
    if not isinstance(provider, SplitProvider):
        raise ConfigError(f"the {config.agent.provider} provider cannot run on Ray (execution.backend: ray)")
    address = config.execution.address or os.environ.get("RAY_ADDRESS")
    _stay_on_loopback(address)
    try:
        import ray
    except ImportError:
        raise TeichError('execution.backend ray needs Ray: pip install "teich[ray]"') from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a new local one"
        raise TeichError(f"cannot connect to the Ray cluster at {where}: {first_line(error)}{_auth_hint()}") from None
    try:
        alive: list[Any] = [node for node in ray.nodes() if node.get("Alive")]
        nodes = len(alive)
        yield RayExecutor(config, provider, (concurrency or config.concurrency) * max(nodes, 1))
    finally:
        ray.shutdown()


def _auth_hint() -> str:
    """What a failed connection may lack: Ray 2.60 heads started with ``RAY_AUTH_MODE=token`` refuse a
    driver without the token, after retrying for a while with no word of why."""
    if os.environ.get("RAY_AUTH_MODE") == "token":
        return ""
    return " (a head with token authentication also needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN here)"


def _stay_on_loopback(address: str | None) -> None:
    """Keep this process on loopback for a cluster at ``127.0.0.1:PORT`` (or ``localhost``, ``[::1]``): Ray
    otherwise swaps a loopback address for this machine's interface address, where a head started with
    ``--node-ip-address 127.0.0.1`` does not listen. Ray reads ``LOOPBACK_ONLY`` when imported; a Ray
    imported earlier in this process gets the same setting in place."""
    host = (address or "").removeprefix("ray://").rpartition(":")[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # no address, "auto", a host name
        return
    if not loopback:
        return
    os.environ[LOOPBACK_ONLY] = "0"
    if "ray" in sys.modules:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def _produce(config: Config, factory: ProviderFactory, spec: PromptSpec) -> tuple[bool, Any]:
    """On a worker: run ``spec`` through ``factory``'s provider for ``config``. ``(False, result)``, or
    ``(True, (message, output))`` for a prompt that failed (a plain value: it crosses to the driver
    without Ray's wrapping)."""
    provider = factory(config)
    assert isinstance(provider, SplitProvider)  # checked by the driver
    try:
        return False, asyncio.run(_produce_closing(provider, spec))
    except GenerationError as error:
        return True, (config.redact(str(error)), config.redact(error.output))


async def _produce_closing(provider: SplitProvider, spec: PromptSpec) -> Any:
    try:
        return await provider.produce(spec)
    finally:
        await provider.close()
