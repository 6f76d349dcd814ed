"""Proofs verified per second inside FinalizeBlock, beside raw `ezkl.verify` on the same files in the same run."""

import json
import tempfile
import time
from pathlib import Path

import ezkl

from chain.genesis import encode_json
from chain.proto.tendermint.abci import types_pb2 as abci
from tests.helpers import DIGITS, INFERENCE_GAS as GAS, InferenceChain, make_account, register, request, submit_msg
from zk.artifacts import load_manifest
from zk.instances import decode_proof, felt_to_hex
from zk.models import compute_model
from zk.prove import prove_circuit

PROOFS = 8


def run() -> list[tuple[str, str, str, str]]:
    manifest = load_manifest(DIGITS)
    circuit = manifest.circuits["layer0"]
    samples = json.loads((DIGITS / "test.json").read_text())["inputs"][:PROOFS + 1]
    accounts = [make_account(name, number) for number, name in enumerate(["alice", "bob"])]
    alice, bob = accounts
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        proofs = [prove_circuit(circuit, values, scratch / "pk") for values in samples]
        raw = []
        for index, proof in enumerate(proofs[:PROOFS]):
            parts = decode_proof(proof.proof)
            path = scratch / f"proof{index}.json"
            path.write_text(json.dumps({"instances": [[felt_to_hex(i) for i in parts.instances]],
                                        "proof": list(parts.transcript)}))
            raw.append(path)
        start = time.perf_counter()
        for path in raw:
            ezkl.verify(str(path), str(circuit.settings_path), str(circuit.vk_path), str(circuit.srs_path), True)
        raw_rate = PROOFS / (time.perf_counter() - start)

        block_rate = _measure_block(scratch, accounts, circuit, samples, proofs)
    return [
        ("proofs verified/s in FinalizeBlock (digits layer0, logrows 12)", f"{block_rate:.1f}",
         f"{raw_rate:.1f} raw ezkl.verify/s", f"{block_rate / raw_rate:.2f}"),
    ]


def _measure_block(scratch, accounts, circuit, samples, proofs) -> float:
    alice, bob = accounts
    chain = InferenceChain(scratch / "data", accounts, {
        "params": {"authority": alice.bech32}, "models": [encode_json(compute_model(DIGITS))]})
    try:
        chain.ok(bob, register(bob, models=("digits",), slots=PROOFS, ask=1, zone="z"), gas=GAS)
        ids = [request(chain, alice, values) for values in samples[:PROOFS]]
        chain.app.verifier.verifier.verify(circuit, proofs[PROOFS].proof)  # the worker process is warm
        txs = [chain.sign(bob, submit_msg(bob, rid, 0, proof), gas=GAS) for rid, proof in zip(ids, proofs)]
        start = time.perf_counter()
        response = chain.app.finalize_block(abci.RequestFinalizeBlock(txs=txs, height=chain.height + 1))
        seconds = time.perf_counter() - start
        chain.app.commit()
        accepted = sum(1 for r in response.tx_results if r.code == 0)
    finally:
        chain.app.close()
    assert accepted == PROOFS, [r.log for r in response.tx_results]
    return accepted / seconds


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
