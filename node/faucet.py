"""The dev chain's faucet: one of the dev keys sends a fixed amount to whoever asks, at `POST /faucet` on
the REST port (`maxwell faucet ADDRESS` asks it), rate-limited so that a flood neither drains the key
nor fills blocks: one grant per address per interval, and a cap on grants per minute overall.
"""

import threading
import time
from collections import deque

from chain import crypto
from chain.coins import DENOM
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx_pb2
from node import client, txclient
from node.app_config import DEFAULT_FAUCET_UJOULE

ADDRESS_INTERVAL_S = 60.0
MAX_GRANTS_PER_MINUTE = 30
MINUTE_S = 60.0


class FaucetError(Exception):
    pass


class InvalidRecipient(FaucetError):
    pass


class RateLimited(FaucetError):
    pass


class Faucet:
    def __init__(self, private_key: bytes, rpc_url: str, amount: int = DEFAULT_FAUCET_UJOULE,
                 address_interval_s: float = ADDRESS_INTERVAL_S, max_per_minute: int = MAX_GRANTS_PER_MINUTE):
        self.private_key, self.rpc_url, self.amount = private_key, rpc_url, amount
        self.address_interval_s, self.max_per_minute = address_interval_s, max_per_minute
        self.address = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(private_key)))
        self.signer: txclient.Signer | None = None
        self.granted: dict[str, float] = {}
        self.recent: deque[float] = deque()
        self.lock = threading.Lock()

    def check_rate(self, address: str, now: float) -> None:
        """Takes a grant for `address` at `now`, or raises RateLimited saying when to ask again."""
        while self.recent and self.recent[0] <= now - MINUTE_S:
            self.recent.popleft()
        last = self.granted.get(address)
        if last is not None and now - last < self.address_interval_s:
            raise RateLimited(f"{address} was sent {self.amount}{DENOM} {now - last:.0f} s ago; ask again in "
                              f"{self.address_interval_s - (now - last):.0f} s")
        if len(self.recent) >= self.max_per_minute:
            raise RateLimited(f"the faucet gives at most {self.max_per_minute} grants a minute; ask again in "
                              f"{MINUTE_S - (now - self.recent[0]):.0f} s")
        self.granted = {a: t for a, t in self.granted.items() if now - t < self.address_interval_s}
        self.granted[address] = now
        self.recent.append(now)

    def send(self, address: str) -> dict:
        """Sends the amount to `address` (broadcast, not waited for): the tx hash."""
        try:
            crypto.decode_address(address)
        except crypto.InvalidAddress as error:
            raise InvalidRecipient(f"invalid address {address!r}: {error}") from None
        with self.lock:
            self.check_rate(address, time.monotonic())
            if self.signer is None:
                self.signer = txclient.load_signer(client.Client(self.rpc_url), self.private_key)
            message = bank_tx_pb2.MsgSend(from_address=self.address, to_address=address,
                                          amount=[{"denom": DENOM, "amount": str(self.amount)}])
            tx_hash, _ = txclient.execute_messages(self.signer, [message], wait=False)
        return {"address": address, "amount": f"{self.amount}{DENOM}", "txhash": tx_hash.hex().upper()}
