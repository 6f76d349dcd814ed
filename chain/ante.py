"""The ante handler: what every transaction pays and proves before its messages run.

Order as in the Cosmos SDK: gas for the tx bytes, the signer's account, its public key, the sequence,
the fee (moved to the fee collector), gas for and verification of the signature, then the sequence
increments. A failure here leaves no trace; after it, the fee is spent even if a message fails.
"""

import base64
import hashlib

from chain import auth, bank, crypto
from chain.coins import DENOM, format_coins
from chain.errors import InvalidPubKeyError, InvalidSequenceError, TxError, UnauthorizedError, UnknownAddressError
from chain.tx import DecodedTx, TxParams

SIGNATURE_CACHE_SIZE = 100_000
SIMULATED_EXTRA_BYTES = 64 + 40  # the signature, and a fee coin with its gas limit
SIMULATED_FEE = 1


class TimeoutHeightError(TxError):
    code = 30


def compute_signature_key(public_key: bytes, tx: DecodedTx, chain_id: str, account_number: int) -> bytes:
    """What a tx's signature check depends on: the tx's hash fixes its signature, body and auth info,
    which with the chain id and account number are the sign bytes. Cheaper than building those."""
    return hashlib.sha256(public_key + tx.hash + account_number.to_bytes(8, "big") + chain_id.encode()).digest()


class SignatureCache:
    """Signatures already verified, keyed by everything they cover (`compute_signature_key`).

    CheckTx fills it, so FinalizeBlock seldom verifies again; a node may give it a `helper` that
    verifies a block's unseen signatures ahead of the block (node.sighelper) and adds them here.
    """

    def __init__(self, size: int = SIGNATURE_CACHE_SIZE, helper=None):
        self.size = size
        self.helper = helper
        self.entries: dict[bytes, None] = {}

    def add(self, key: bytes) -> None:
        if len(self.entries) >= self.size:
            del self.entries[next(iter(self.entries))]
        self.entries[key] = None

    def is_verified(self, public_key: bytes, tx: DecodedTx, chain_id: str, account_number: int) -> bool:
        key = compute_signature_key(public_key, tx, chain_id, account_number)
        if key in self.entries:
            return True
        if self.helper is not None and self.helper.pending:
            self.helper.collect(self)
            if key in self.entries:
                return True
        if not crypto.is_valid_signature(public_key, tx.signature, tx.sign_bytes(chain_id, account_number)):
            return False
        self.add(key)
        return True


def process_ante(state, ctx, tx: DecodedTx, params: TxParams, signatures: SignatureCache, simulate: bool = False) -> None:
    if tx.timeout_height and ctx.height > tx.timeout_height:
        raise TimeoutHeightError(f"tx timeout height {tx.timeout_height} is below block height {ctx.height}")
    size = tx.size + (SIMULATED_EXTRA_BYTES if simulate else 0)
    state.meter.consume(params.tx_size_cost_per_byte * size, "txSize")

    account = auth.get_account(state, tx.signer)
    signer_text = crypto.encode_address(tx.signer)
    if account is None:
        raise UnknownAddressError(f"account {signer_text} does not exist")
    public_key = auth.get_public_key(account)
    if public_key is None:
        if tx.public_key is None:
            raise InvalidPubKeyError(f"pubkey on account {signer_text} is not set and none was supplied")
        if crypto.compute_address(tx.public_key) != tx.signer:
            raise InvalidPubKeyError(f"pubkey does not match signer address {signer_text}")
        public_key = tx.public_key
        auth.set_public_key(account, public_key)
    elif tx.public_key is not None and tx.public_key != public_key:
        raise InvalidPubKeyError(f"pubkey does not match the one on account {signer_text}")
    if tx.sequence != account.sequence:
        raise InvalidSequenceError(
            f"account sequence mismatch, expected {account.sequence}, got {tx.sequence}: incorrect account sequence"
        )

    # a simulation usually carries no fee yet; it pays for the reads and writes the real fee will cost
    fee = tx.fee or (SIMULATED_FEE if simulate else 0)
    if fee:
        bank.process_transfer(state, ctx, tx.signer, bank.FEE_COLLECTOR, {DENOM: fee})
    ctx.emit("tx", ("fee", format_coins({DENOM: tx.fee}) if tx.fee else ""), ("fee_payer", signer_text))

    state.meter.consume(params.sig_verify_cost_secp256k1, "ante verify: secp256k1")
    if not simulate and not signatures.is_verified(public_key, tx, ctx.chain_id, account.account_number):
        raise UnauthorizedError(
            f"signature verification failed; please verify account number ({account.account_number}) "
            f"and chain-id ({ctx.chain_id}): unauthorized"
        )
    account.sequence += 1
    auth.set_account(state, account)
    ctx.emit("tx", ("acc_seq", f"{signer_text}/{tx.sequence}"))
    ctx.emit("tx", ("signature", base64.b64encode(tx.signature).decode()))
