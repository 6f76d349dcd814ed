"""IBC core as one component of the chain: 02-client, 03-connection and 04-channel over the `ibc` store
(ibc.state), with the applications bound to their ports (05-port) when the node starts.

Its genesis section lists the store's records by path (base64 values): a counterparty proves those
same paths, so an exported chain imports with the same IBC state and commitments.
"""

import base64

from chain.errors import GenesisError
from chain.state import public
from ibc import channel, client, connection, ica_controller, ica_host, transfer
from ibc.state import STORE, decode_key, state_key

MODULES = (client, connection, channel)
__all__ = ("STORE", "state_key", "decode_key", "MESSAGES", "QUERIES", "init_chain", "export_genesis")
MESSAGES = {url: handler for module in MODULES for url, handler in module.MESSAGES.items()}
QUERIES = {path: route for module in MODULES for path, route in module.QUERIES.items()}

channel.bind_port(transfer.PORT_ID, transfer)
channel.bind_port_prefix(ica_controller.PORT_PREFIX, ica_controller)
channel.bind_port(ica_host.PORT_ID, ica_host)


def init_chain(state, section: dict, ctx) -> None:
    if not isinstance(section, dict):
        raise GenesisError("ibc genesis must be an object")
    try:
        for entry in section.get("records", []):
            state.set(entry["path"].encode("latin-1"), base64.b64decode(entry["value"], validate=True))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise GenesisError(f"ibc genesis: malformed record: {error}") from None


@public(STORE)
def export_genesis(state) -> dict:
    return {"records": [{"path": key.decode("latin-1"), "value": base64.b64encode(value).decode()}
                        for key, value in state.iterate()]}
