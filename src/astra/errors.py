"""Typed errors. The CLI turns any :class:`AstraError` into one clear line on stderr and
exits with the error's ``exit_code`` (see ``docs/cli.md`` for the table)."""

from __future__ import annotations


class AstraError(Exception):
    """Base of every error astra raises on purpose."""

    exit_code = 1


class ConfigError(AstraError):
    """A bad option, provider spec or missing setting."""


class InputError(AstraError):
    """Malformed input data: names the file, line and field where it can."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            if field:
                where += f" [{field}]"
            where += ": "
        super().__init__(where + message)
        self.path, self.line, self.field = path, line, field


class SchemaVersionError(InputError):
    """A record written by a newer astra than this one."""


class OutputError(AstraError):
    """An output that cannot be written (a parent path that is a file, a read-only
    directory, a full disk …). Names the path and what to do."""


class EndpointError(AstraError):
    """A service a stage depends on did not answer usably: an LLM endpoint or a live tool
    server that is down, refuses connections, times out or keeps failing. Never the
    record's fault: the stage records the input as *failed* (retried by a rerun), not
    rejected."""


class EndpointDown(AstraError):
    """The stage stopped early: too many records in a row failed to reach the endpoint."""

    exit_code = 4


class StageFailed(AstraError):
    """Every record a stage run processed failed (nothing was decided about any of them)."""

    exit_code = 4


class NothingProduced(AstraError):
    """A stage (or command) finished without writing a single record."""

    exit_code = 3


class ToolSchemaError(AstraError):
    """A tool schema that cannot be mapped to the OpenAI function format."""


class ToolCallError(AstraError):
    """A tool call that failed in a way the agent should see (bad arguments, unknown id,
    business-rule violation). Tool implementations raise it; executors return its message
    to the model as the tool's result and count the call as failed."""
