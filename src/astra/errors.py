"""Typed errors. The CLI turns any :class:`AstraError` into one clear line and exit 1."""

from __future__ import annotations


class AstraError(Exception):
    """Base of every error astra raises on purpose."""


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


class ToolSchemaError(AstraError):
    """A tool schema that cannot be mapped to the OpenAI function format."""


class ToolCallError(AstraError):
    """A tool call that failed in a way the agent should see (bad arguments, unknown id,
    business-rule violation). Tool implementations raise it; executors return its message
    to the model as the tool's result and count the call as failed."""
