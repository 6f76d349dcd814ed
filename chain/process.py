"""The economics of a process: a long-lived job that holds slots every block and keeps memory on chain.

Each block a process pays rent: the slots it held at that block's clearing price, plus
`memory_rent_per_byte` for every byte of memory it keeps (key and value bytes). Rent for memory
alone is predictable, so it is settled lazily: a process records the last block it paid for
(`paid_height`) and the block at which memory rent alone would exhaust its escrow (`death_height`);
the chain touches it only when it is matched, changes its memory, is topped up, or reaches that block.
Allocating memory costs ordinary write gas; erasing it pays the entropy tax of the core gas schedule
(`GasParams.erase_cost_per_byte`), converted to ujoule at the minimum gas price when the chain
erases a dead process's memory outside any transaction.
"""


def compute_memory_size(key: bytes, value: bytes) -> int:
    return len(key) + len(value)


def compute_memory_rent(memory_bytes: int, rent_per_byte: int, blocks: int) -> int:
    return memory_bytes * rent_per_byte * max(blocks, 0)


def compute_death_height(paid_height: int, escrow: int, memory_bytes: int, rent_per_byte: int) -> int:
    """The first block whose memory rent the escrow cannot pay; 0 when memory costs nothing."""
    per_block = memory_bytes * rent_per_byte
    if per_block == 0:
        return 0
    return paid_height + escrow // per_block + 1


def compute_erase_tax(erased_bytes: int, gas_params, tx_params) -> int:
    """The entropy tax of erasing `erased_bytes`, in ujoule at the minimum gas price (rounded up)."""
    gas = erased_bytes * gas_params.erase_cost_per_byte
    return -(-gas * tx_params.min_gas_price_numerator // tx_params.min_gas_price_denominator)
