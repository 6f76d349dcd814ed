"""The signature helper: a second process that verifies a block's unseen signatures ahead of it.

FinalizeBlock hands it the signatures of the txs this node has not seen (CheckTx verified the others)
a few at a time, as it decodes them, and then executes the block in order; the helper streams back
the valid ones chunk by chunk into the app's SignatureCache. A tx whose chunk is not back yet is
verified inline, and only valid signatures are cached, so every tx's outcome is the same with or
without the helper. The app reads the helper's pipe itself, when it needs a key: no thread of its
own competes with the block for the interpreter.
"""

import multiprocessing
from collections import deque

from chain import crypto

MIN_ITEMS = 256  # a smaller block verifies faster inline than it ships its signatures out
SEND_ITEMS = 64  # items sent at a time, so the helper starts while the block prepares the rest
CHUNK_ITEMS = 16
STOP_SECONDS = 10.0


def compute_valid_signature_keys(items: list[tuple[bytes, bytes, bytes, bytes]]) -> list[bytes]:
    """The keys of the (key, public key, signature, sign bytes) whose signature verifies."""
    return [key for key, *signed in items if crypto.is_valid_signature(*signed)]


def serve_signatures(connection) -> None:
    """The helper process: for each list of items received, the valid keys of each chunk of it, in order.

    It reads whatever has arrived before each chunk: the block sends faster than this verifies, and
    would otherwise wait on a full pipe.
    """
    chunks = deque()
    while True:
        try:
            while not chunks or connection.poll():
                items = connection.recv()
                chunks.extend(items[start : start + CHUNK_ITEMS] for start in range(0, len(items), CHUNK_ITEMS))
        except EOFError:
            return
        connection.send(compute_valid_signature_keys(chunks.popleft()))


class SignatureHelper:
    """The helper process, started on the first block worth it (or by `start`), restarted if it dies."""

    def __init__(self):
        self.pending = 0  # chunks sent whose keys have not been read
        self.process: multiprocessing.Process | None = None
        self.connection = None

    def close(self) -> None:
        if self.process is not None:
            self.connection.close()  # the helper sees the end of its input and exits
            self.process.join(STOP_SECONDS)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process, self.connection, self.pending = None, None, 0

    def start(self) -> None:
        if self.process is None:
            context = multiprocessing.get_context("spawn")
            self.connection, child = context.Pipe()
            self.process = context.Process(target=serve_signatures, args=(child,), daemon=True)
            self.process.start()
            child.close()

    def is_worth(self, txs: int) -> bool:
        return txs >= MIN_ITEMS

    def verify_ahead(self, items, cache) -> None:
        """Sends the (key, public key, signature, sign bytes) of `items` as they come, SEND_ITEMS at a time.

        The helper is started once per block: one that dies mid-block is not respawned for every batch.
        """
        self.start()
        batch = []
        for item in items:
            batch.append(item)
            if len(batch) == SEND_ITEMS:
                self._send(batch, cache)
                batch = []
        self._send(batch, cache)

    def _send(self, items: list, cache) -> None:
        """What the helper has finished is read first, so that it is never left writing to a full pipe
        while this process writes to it: it reads its input between chunks, and the keys of a pipe's
        worth of items take a tenth of that room."""
        if not items or self.process is None:
            return
        self.collect(cache)
        if self.process is None:
            return
        try:
            self.connection.send(items)
        except OSError:
            self.close()
            return
        self.pending += -(-len(items) // CHUNK_ITEMS)

    def collect(self, cache) -> None:
        """Adds the keys of the chunks the helper has finished to `cache`."""
        try:
            while self.pending and self.connection.poll():
                keys = self.connection.recv()
                self.pending -= 1
                for key in keys:
                    cache.add(key)
        except (OSError, EOFError):  # a dead helper only means these are verified inline
            self.close()
