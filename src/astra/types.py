"""The nouns of astra: every record a stage reads or writes.

All records are pydantic v2 models that serialize to one JSON object per JSONL line.
Each carries ``schema_version``; :mod:`astra.io` refuses records written by a newer
version with a clear message instead of misreading them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1


class Record(BaseModel):
    """Base of every persisted record."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = SCHEMA_VERSION

    def record_key(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


# ---------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------


class Tool(BaseModel):
    """One tool in the OpenAI function schema, plus an optional output schema."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )
    output_schema: dict[str, Any] | None = None

    def openai(self) -> dict[str, Any]:
        """The tool as an OpenAI ``tools`` list entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.parameters.get("properties", {}))

    def param_schema(self, name: str) -> dict[str, Any]:
        """The schema of parameter ``name``; ``{}`` when there is none (or it is not an object)."""
        schema = self.properties.get(name)
        return schema if isinstance(schema, dict) else {}


CallKind = Literal["python", "mcp_stdio", "mcp_http", "mcp_sse", "doc_only"]


class CallInfo(BaseModel):
    """How to execute a server's tools.

    - ``python``: ``target`` is ``module:Class`` (a fresh instance per session; public
      methods are the tools) or ``module`` (module-level functions, stateless).
    - ``mcp_stdio``: ``target`` is the command line that starts the server.
    - ``mcp_http``: ``target`` is the server URL (streamable HTTP).
    - ``mcp_sse``: ``target`` is the server's SSE endpoint URL (the older HTTP transport).
    - ``doc_only``: no implementation; the tool emulator serves it.
    """

    model_config = ConfigDict(extra="forbid")

    kind: CallKind = "doc_only"
    target: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class ToolServer(Record):
    """A group of tools from one originating service (an "MCP server")."""

    name: str
    title: str = ""
    description: str = ""
    domain: str = "general"
    tools: list[Tool] = Field(default_factory=list)
    call: CallInfo = Field(default_factory=CallInfo)
    source: str = ""  # where it was ingested from (file, URL, command, module)

    def record_key(self) -> str:
        return self.name

    def tool(self, name: str) -> Tool:
        for t in self.tools:
            if t.name == name:
                return t
        raise KeyError(f"server {self.name!r} has no tool {name!r}")

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai() for t in self.tools]


class Rejection(BaseModel):
    """Why a stage did not keep something. ``reason`` is a short stable code."""

    model_config = ConfigDict(extra="forbid")

    key: str
    reason: str
    detail: str = ""


# ---------------------------------------------------------------------------------
# Graphs, chains, tasks
# ---------------------------------------------------------------------------------


class Chain(Record):
    """An ordered tool chain f1 -> ... -> fn inside one server."""

    server: str
    tools: list[str]
    source: str = "walk"  # walk | llm | dataflow
    weight: float = 0.0
    checks: dict[str, Any] = Field(default_factory=dict)  # verification verdicts

    @field_validator("tools")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a chain needs at least one tool")
        return v

    def record_key(self) -> str:
        return f"{self.server}:{'>'.join(self.tools)}"


class Task(Record):
    """A user request that needs the target tools of one server."""

    id: str
    server: str
    query: str
    target_tools: list[str]
    mode: Literal["chain", "server"] = "chain"
    chain: list[str] | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)  # concrete values the task states
    augmentation: str | None = None  # None for an original; diversity|complexity|persona
    parent_id: str | None = None
    persona: str | None = None
    language: str = "en"
    scores: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def record_key(self) -> str:
        return self.id


class Trajectory(Record):
    """A multi-turn episode as OpenAI chat messages plus the tools list."""

    id: str
    task_id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    agent: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    judgement: dict[str, Any] | None = None

    def record_key(self) -> str:
        return self.id


# ---------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------

Scenario = Literal["single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"]


class SubTask(BaseModel):
    """One sub-question of a decomposed multi-hop question."""

    model_config = ConfigDict(extra="forbid")

    id: str
    hop_level: int = 1
    sub_question: str
    is_parallel: bool = False
    dependency: list[str] | None = None
    sub_answer: str
    needs_tool: bool = True


class QAInstance(Record):
    """A main question, its answer and its sub-QA decomposition (a DAG)."""

    id: str
    domain: str
    scenario: Scenario
    question: str
    answer: str
    sub_tasks: list[SubTask]
    knowledge: str = ""  # the knowledge source it was grounded in
    scores: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def record_key(self) -> str:
        return self.id


class EnvTool(BaseModel):
    """A synthesized tool: its schema and the standard-library Python that implements it."""

    model_config = ConfigDict(extra="forbid")

    tool: Tool
    code: str
    serves: list[str] = Field(default_factory=list)  # sub-task ids it answers
    calls: dict[str, str] = Field(default_factory=dict)  # sub-task id -> gold call statement


class Environment(Record):
    """A standalone, executable, rule-verifiable RL environment for one instance."""

    id: str
    instance: QAInstance
    tools: list[EnvTool]
    verification: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def record_key(self) -> str:
        return self.id


RECORD_TYPES: dict[str, type[Record]] = {
    "ToolServer": ToolServer,
    "Chain": Chain,
    "Task": Task,
    "Trajectory": Trajectory,
    "QAInstance": QAInstance,
    "Environment": Environment,
}
