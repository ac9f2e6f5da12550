"""The base of the CR's types: Python field names, the CRD's camelCase on the wire, unknown
fields refused (a typo in a spec is an error naming it, not a silent default)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )
