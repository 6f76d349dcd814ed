"""`maxwell chain-info`: the chain as wallets and explorers list it, read from a running node.

Three documents: the cosmos chain-registry `chain.json` and `assetlist.json`, and the chain object
Keplr's `experimentalSuggestChain` takes. The facts come from the node (chain id from both its RPC
and REST, the fee denom and minimum gas price from /cosmos/base/node/v1beta1/config, the token's
units from its bank denom metadata, the staking denom from the staking params); the address prefix
and BIP-44 coin type are this software's (chain.crypto).
"""

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from pathlib import Path

from chain import crypto
from chain.app import APP_NAME
from node import client

REQUEST_TIMEOUT_S = 10.0
CHAIN_FILE, ASSETLIST_FILE, KEPLR_FILE = "chain.json", "assetlist.json", "keplr.json"
# Gas price steps as multiples of the chain's minimum: low pays just enough, as the chain has no fee market.
GAS_PRICE_STEPS = {"low": Decimal(1), "average": Decimal(2), "high": Decimal(4)}
NETWORK_TYPES = ("mainnet", "testnet", "devnet")
KEY_ALGORITHM = "secp256k1"
COIN_TYPE = int(re.fullmatch(r"m/44'/(\d+)'/.*", crypto.HD_PATH).group(1))
GAS_PRICE_PATTERN = re.compile(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z][a-zA-Z0-9/:._-]{2,127})")
BECH32_SUFFIXES = {"bech32PrefixAccAddr": "", "bech32PrefixAccPub": "pub", "bech32PrefixValAddr": "valoper",
                   "bech32PrefixValPub": "valoperpub", "bech32PrefixConsAddr": "valcons",
                   "bech32PrefixConsPub": "valconspub"}


class ChainInfoError(Exception):
    pass


def get_rest_json(rest: str, path: str) -> dict:
    """GET a REST gateway route; its JSON object, or ChainInfoError with the gateway's own message."""
    url = rest.rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            message = json.loads(raw)["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {error.code}"
        raise ChainInfoError(f"the REST gateway at {rest} answered {path} with {error.code}: {message}") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise ChainInfoError(f"cannot reach the REST gateway at {rest}: {getattr(error, 'reason', error)}") from None
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        raise ChainInfoError(f"the REST gateway at {rest} did not answer {path} with a JSON object")
    return answer


def parse_min_gas_price(text: str) -> tuple[Decimal, str]:
    match = GAS_PRICE_PATTERN.fullmatch(text or "")
    if match is None:
        raise ChainInfoError(f"the node's minimum gas price {text!r} is not an amount and a denom")
    return Decimal(match.group(1)), match.group(2)


def check_url(url: str, what: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ChainInfoError(f"invalid {what} URL {url!r} (use http://host:port or https://host)")
    return url.rstrip("/")


def get_metadata(rest: str, denom: str) -> tuple[dict, int]:
    """A denom's bank metadata, and the decimals of its display unit."""
    metadata = get_rest_json(rest, f"/cosmos/bank/v1beta1/denoms_metadata/{urllib.parse.quote(denom, safe='')}")
    metadata = metadata["metadata"]
    units = {unit["denom"]: int(unit["exponent"]) for unit in metadata["denom_units"]}
    return metadata, units[metadata["display"]]


def get_facts(rpc: str, rest: str) -> dict:
    """What the documents say, read from the node."""
    node_info = get_rest_json(rest, "/cosmos/base/tendermint/v1beta1/node_info")
    try:
        chain_id = node_info["default_node_info"]["network"]
        version = (node_info.get("application_version") or {}).get("version", "")
        price, denom = parse_min_gas_price(get_rest_json(rest, "/cosmos/base/node/v1beta1/config")["minimum_gas_price"])
        bond_denom = get_rest_json(rest, "/cosmos/staking/v1beta1/params")["params"]["bond_denom"]
        fee_token, stake_token = get_metadata(rest, denom), get_metadata(rest, bond_denom)
    except (KeyError, TypeError, ValueError, InvalidOperation) as error:
        raise ChainInfoError(f"the REST gateway at {rest} answered without what chain-info needs: {error!r}") from None
    rpc_chain_id = client.Client(rpc, timeout=REQUEST_TIMEOUT_S).status().chain_id
    if rpc_chain_id != chain_id:
        raise ChainInfoError(f"the RPC at {rpc} serves chain {rpc_chain_id!r} but the REST gateway at {rest} "
                             f"serves {chain_id!r}")
    return {"chain_id": chain_id, "version": version, "min_gas_price": price, "denom": denom,
            "fee_token": fee_token, "bond_denom": bond_denom, "stake_token": stake_token}


def compute_gas_prices(min_gas_price: Decimal) -> dict[str, float]:
    return {step: float(min_gas_price * factor) for step, factor in GAS_PRICE_STEPS.items()}


def compute_chain_json(facts: dict, rpc: str, rest: str, grpc: str | None, network_type: str) -> dict:
    prices = compute_gas_prices(facts["min_gas_price"])
    apis = {"rpc": [{"address": rpc}], "rest": [{"address": rest}]}
    if grpc:
        apis["grpc"] = [{"address": grpc}]
    return {
        "$schema": "../chain.schema.json",
        "chain_name": APP_NAME,
        "chain_type": "cosmos",
        "status": "live",
        "network_type": network_type,
        "pretty_name": APP_NAME.capitalize(),
        "chain_id": facts["chain_id"],
        "bech32_prefix": crypto.BECH32_PREFIX,
        "daemon_name": APP_NAME,
        "node_home": f"$HOME/.{APP_NAME}",
        "key_algos": [KEY_ALGORITHM],
        "slip44": COIN_TYPE,
        "fees": {"fee_tokens": [{
            "denom": facts["denom"], "fixed_min_gas_price": float(facts["min_gas_price"]),
            "low_gas_price": prices["low"], "average_gas_price": prices["average"], "high_gas_price": prices["high"]}]},
        "staking": {"staking_tokens": [{"denom": facts["bond_denom"]}]},
        "codebase": {"recommended_version": facts["version"]},
        "apis": apis,
    }


def compute_asset(metadata: dict) -> dict:
    return {
        "description": metadata.get("description", ""),
        "denom_units": [{"denom": unit["denom"], "exponent": int(unit["exponent"])}
                        for unit in metadata["denom_units"]],
        "base": metadata["base"],
        "name": metadata.get("name", ""),
        "display": metadata["display"],
        "symbol": metadata.get("symbol", ""),
        "type_asset": "sdk.coin",
    }


def compute_assetlist(facts: dict) -> dict:
    tokens = [facts["fee_token"]] + ([facts["stake_token"]] if facts["bond_denom"] != facts["denom"] else [])
    return {"$schema": "../assetlist.schema.json", "chain_name": APP_NAME,
            "assets": [compute_asset(metadata) for metadata, _ in tokens]}


def compute_currency(token: tuple[dict, int]) -> dict:
    metadata, decimals = token
    return {"coinDenom": metadata.get("symbol") or metadata["display"].upper(), "coinMinimalDenom": metadata["base"],
            "coinDecimals": decimals}


def compute_keplr_chain(facts: dict, rpc: str, rest: str) -> dict:
    fee, stake = compute_currency(facts["fee_token"]), compute_currency(facts["stake_token"])
    return {
        "chainId": facts["chain_id"],
        "chainName": APP_NAME.capitalize(),
        "rpc": rpc,
        "rest": rest,
        "bip44": {"coinType": COIN_TYPE},
        "bech32Config": {name: crypto.BECH32_PREFIX + suffix for name, suffix in BECH32_SUFFIXES.items()},
        "currencies": [fee] + ([stake] if stake != fee else []),
        "feeCurrencies": [{**fee, "gasPriceStep": compute_gas_prices(facts["min_gas_price"])}],
        "stakeCurrency": stake,
        "features": [],
    }


def compute_documents(rpc: str, rest: str, grpc: str | None, network_type: str = "testnet") -> dict[str, dict]:
    """{file name: document} for the node at these addresses."""
    if network_type not in NETWORK_TYPES:
        raise ChainInfoError(f"invalid network type {network_type!r} (use one of {', '.join(NETWORK_TYPES)})")
    rpc, rest = check_url(rpc, "RPC"), check_url(rest, "REST")
    facts = get_facts(rpc, rest)
    return {CHAIN_FILE: compute_chain_json(facts, rpc, rest, grpc, network_type),
            ASSETLIST_FILE: compute_assetlist(facts),
            KEPLR_FILE: compute_keplr_chain(facts, rpc, rest)}


def write_documents(documents: dict[str, dict], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents.items():
        path = directory / name
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    return written
