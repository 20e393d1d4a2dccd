"""The base of every stage that talks to an LLM.

The stage keeps :class:`~astra.llm.LLMSettings` (picklable) on the object and builds its
clients in :meth:`~astra.pipeline.stage.Stage.setup`; a client given to the constructor
(tests: the scripted chat-API test double) is used as is. What ``setup`` builds, and
anything else that must not travel to a Ray worker, is named in ``_NOT_PICKLED``: left out
of the pickled state and ``None`` after unpickling, so a worker builds its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

from astra.llm import LLMClient, LLMSettings, make_client
from astra.pipeline.stage import In, Out, Stage


def settings_config(settings: LLMSettings | None) -> dict[str, Any] | None:
    """What a manifest records of the LLM settings: the provider spec and the endpoint."""
    return None if settings is None else {"spec": settings.spec, "base_url": settings.base_url}


def tiny_default(llm: LLMSettings | None) -> bool:
    """Whether ``llm`` (default: the environment's) is the tiny embedded default model
    (``embedded`` without a path), whose judgement stages do not rely on."""
    spec = (llm or LLMSettings.from_env()).spec
    return spec.strip() in ("", "embedded")


class LLMStage(Stage[In, Out]):
    """A stage with LLM clients built in ``setup`` (see the module docstring)."""

    #: attributes never pickled (built in ``setup``, or injected objects); None after unpickling
    _NOT_PICKLED: ClassVar[tuple[str, ...]] = ("_client",)

    llm: LLMSettings | None
    _injected: LLMClient | None
    _client: LLMClient | None

    def keep_llm(self, llm: LLMSettings | None, client: LLMClient | None) -> None:
        """Keep the LLM settings and an injected client; :meth:`connect` (in ``setup``) makes
        the client."""
        self.llm = llm
        self._injected = client
        self._client = None

    def connect(self) -> LLMClient:
        """``self._client``: the injected client, else one for ``self.llm``."""
        self._client = self.build_client(self.llm, self._injected)
        return self._client

    @staticmethod
    def build_client(settings: LLMSettings | None, injected: LLMClient | None = None) -> LLMClient:
        """``injected`` when given, else a client for ``settings`` (default: the environment's)."""
        if injected is not None:
            return injected
        return make_client(settings or LLMSettings.from_env())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for k in self._NOT_PICKLED:
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for k in self._NOT_PICKLED:
            self.__dict__.setdefault(k, None)
