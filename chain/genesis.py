"""A module's genesis section as JSON: proto3 JSON of its GenesisState, params over their defaults."""

from google.protobuf import json_format

from chain.errors import GenesisError


def encode_json(message, *, all_fields: bool = False) -> dict:
    """proto3 JSON with the field names of the .proto files, as genesis files write them."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=all_fields)


def decode_genesis(section, genesis_class, default_params, module: str):
    """The module's GenesisState from its section; the section's params override the defaults."""
    if not isinstance(section, dict) or not isinstance(section.get("params", {}), dict):
        raise GenesisError(f"{module} genesis must be an object with an object of params")
    params = {**encode_json(default_params), **section.get("params", {})}
    try:
        return json_format.ParseDict({**section, "params": params}, genesis_class())
    except json_format.ParseError as error:
        raise GenesisError(f"{module} genesis: {error}") from None
