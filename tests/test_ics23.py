import base64
import hashlib
import json

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chain.proto.cosmos.ics23.v1.proofs_pb2 import (
    SHA256,
    SHA512,
    BatchEntry,
    BatchProof,
    CommitmentProof,
    CompressedBatchEntry,
    CompressedBatchProof,
    CompressedExistenceProof,
    CompressedNonExistenceProof,
    ExistenceProof,
    InnerOp,
    LeafOp,
    NonExistenceProof,
    ProofSpec,
)
from ibc.ics23 import (
    IAVL_SPEC,
    SMT_SPEC,
    TENDERMINT_SPEC,
    ChainShapeMismatch,
    ChildTooLarge,
    DepthOutOfRange,
    EmptyChild,
    EmptyKey,
    EmptyValue,
    Ics23Error,
    InnerHashMismatch,
    InnerLooksLikeLeaf,
    InnerPrefixLength,
    InvalidIavlPrefix,
    InvalidInnerSpec,
    InvalidLookupIndex,
    InvalidTendermintPrefix,
    KeyMismatch,
    KeyOutOfRange,
    MalformedSuffix,
    LeafSpecMismatch,
    MissingLeafOp,
    NoBatchEntry,
    NotNeighbors,
    NotLeftMost,
    ProofDecodeError,
    ValueMismatch,
    WrongProofType,
    WrongRoot,
    check_existence_against_spec,
    check_iavl_prefix,
    check_inner_op_against_spec,
    check_leaf_op_against_spec,
    check_tendermint_prefix,
    compute_existence_root,
    compute_hash,
    compute_inner_hash,
    compute_leaf_hash,
    compute_non_existence_root,
    decode_commitment_proof,
    has_empty_left_branches,
    has_empty_right_branches,
    is_left_most,
    is_left_neighbor,
    is_member,
    is_non_member,
    is_right_most,
    verify_chained_membership,
    verify_chained_non_membership,
    verify_existence,
    verify_membership,
    verify_non_existence,
    verify_non_membership,
)
from tests.helpers import require_vectors

VECTORS = require_vectors("ics23")  # the cases below are parametrized from its files

SPECS = {"iavl": IAVL_SPEC, "tendermint": TENDERMINT_SPEC, "smt": SMT_SPEC}
CASES = [
    f"{tree}/{kind}_{side}"
    for tree in SPECS
    for kind in ("exist", "nonexist")
    for side in ("left", "middle", "right")
]


def load_vector(case):
    tree = case.split("/")[0]
    data = json.loads((VECTORS / f"{case}.json").read_text())
    return {
        "spec": SPECS[tree],
        "encoded": bytes.fromhex(data["proof"]),
        "proof": decode_commitment_proof(bytes.fromhex(data["proof"])),
        "root": bytes.fromhex(data["root"]),
        "key": bytes.fromhex(data["key"]),
        "value": bytes.fromhex(data["value"]),
    }


def verify_claim(spec, root, proof, key, value):
    """Verify what a vector claims: membership of (key, value), or non-membership of key."""
    if value:
        verify_membership(spec, root, proof, key, value)
    else:
        verify_non_membership(spec, root, proof, key)


def load_unit(name):
    return json.loads((VECTORS / name).read_text())


def parse(data, message):
    return json_format.ParseDict(data, message)


def b64(data):
    return base64.b64decode(data) if data else b""


def tendermint_tree(items):
    """Simple-merkle root and existence proofs over a power-of-two list of (key, value)."""

    def build(hashes):
        if len(hashes) == 1:
            return hashes[0], [[]]
        mid = len(hashes) // 2
        left_root, left_paths = build(hashes[:mid])
        right_root, right_paths = build(hashes[mid:])
        paths = [p + [InnerOp(hash=SHA256, prefix=b"\x01", suffix=right_root)] for p in left_paths]
        paths += [p + [InnerOp(hash=SHA256, prefix=b"\x01" + left_root)] for p in right_paths]
        return hashlib.sha256(b"\x01" + left_root + right_root).digest(), paths

    leaf = TENDERMINT_SPEC.leaf_spec
    root, paths = build([compute_leaf_hash(leaf, k, v) for k, v in items])
    proofs = {
        k: CommitmentProof(exist=ExistenceProof(key=k, value=v, leaf=leaf, path=path))
        for (k, v), path in zip(items, paths)
    }
    return root, proofs


# --- the 18 reference proofs -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_vector_verifies_with_its_spec(case):
    v = load_vector(case)
    proof = v["proof"]
    if v["value"]:
        assert compute_existence_root(proof.exist) == v["root"]
    else:
        assert compute_non_existence_root(proof.nonexist) == v["root"]
    verify_claim(v["spec"], v["root"], proof, v["key"], v["value"])
    if v["value"]:
        assert is_member(v["spec"], v["root"], proof, v["key"], v["value"])
        assert not is_non_member(v["spec"], v["root"], proof, v["key"])
    else:
        assert is_non_member(v["spec"], v["root"], proof, v["key"])
        assert not is_member(v["spec"], v["root"], proof, v["key"], b"anything")


@pytest.mark.parametrize("case", [c for c in CASES if "/exist" in c])
def test_vector_rejects_wrong_value(case):
    v = load_vector(case)
    with pytest.raises(ValueMismatch):
        verify_membership(v["spec"], v["root"], v["proof"], v["key"], v["value"] + b"!")


@pytest.mark.parametrize("case", [c for c in CASES if "/exist" in c])
def test_vector_rejects_wrong_key(case):
    v = load_vector(case)
    with pytest.raises(KeyMismatch):
        verify_membership(v["spec"], v["root"], v["proof"], v["key"] + b"!", v["value"])


@pytest.mark.parametrize("case", [c for c in CASES if "/nonexist" in c])
def test_vector_rejects_key_that_is_a_neighbour(case):
    v = load_vector(case)
    nonexist = v["proof"].nonexist
    neighbour = nonexist.left if nonexist.HasField("left") else nonexist.right
    with pytest.raises(KeyOutOfRange):
        verify_non_membership(v["spec"], v["root"], v["proof"], neighbour.key)
    assert is_member(v["spec"], v["root"], v["proof"], neighbour.key, neighbour.value) is False


@pytest.mark.parametrize("case", CASES)
def test_vector_rejects_wrong_root(case):
    v = load_vector(case)
    root = bytes([v["root"][0] ^ 1]) + v["root"][1:]
    with pytest.raises(WrongRoot):
        verify_claim(v["spec"], root, v["proof"], v["key"], v["value"])


@pytest.mark.parametrize("case", CASES)
def test_vector_rejects_flipped_proof_byte(case):
    v = load_vector(case)
    encoded = v["encoded"][:-1] + bytes([v["encoded"][-1] ^ 0x01])
    with pytest.raises(Ics23Error):
        verify_claim(v["spec"], v["root"], decode_commitment_proof(encoded), v["key"], v["value"])


@pytest.mark.parametrize(
    "case,other", [(c, s) for c in CASES for s in SPECS if not c.startswith(s + "/")]
)
def test_vector_rejected_under_another_spec(case, other):
    v = load_vector(case)
    with pytest.raises(Ics23Error):
        verify_claim(SPECS[other], v["root"], v["proof"], v["key"], v["value"])


@pytest.mark.parametrize("case", [c for c in CASES if "/nonexist" in c])
def test_non_existence_proof_cannot_prove_membership(case):
    v = load_vector(case)
    with pytest.raises(WrongProofType):
        verify_membership(v["spec"], v["root"], v["proof"], v["key"], b"value")


def test_spec_constants_match_upstream():
    assert SMT_SPEC.prehash_key_before_comparison
    assert SMT_SPEC.max_depth == 256
    assert SMT_SPEC.inner_spec.empty_child == bytes(32)
    assert SMT_SPEC.leaf_spec.prehash_key == SHA256
    assert SMT_SPEC.leaf_spec.length == 0
    assert IAVL_SPEC.inner_spec.child_size == 33
    iavl_inner = IAVL_SPEC.inner_spec
    assert (iavl_inner.min_prefix_length, iavl_inner.max_prefix_length) == (4, 12)
    assert TENDERMINT_SPEC.inner_spec.child_size == 32
    assert not TENDERMINT_SPEC.prehash_key_before_comparison


# --- batches and compressed batches ----------------------------------------------------------


def make_batch(tree):
    vectors = [load_vector(c) for c in CASES if c.startswith(tree + "/")]
    entries = []
    for v in vectors:
        kind = v["proof"].WhichOneof("proof")
        entries.append(BatchEntry(**{kind: getattr(v["proof"], kind)}))
    return vectors, CommitmentProof(batch=BatchProof(entries=entries))


def compress(batch):
    lookup, index = [], {}

    def compress_existence(exist):
        path = []
        for op in exist.path:
            encoded = op.SerializeToString()
            if encoded not in index:
                index[encoded] = len(lookup)
                lookup.append(op)
            path.append(index[encoded])
        return CompressedExistenceProof(
            key=exist.key, value=exist.value, leaf=exist.leaf, path=path
        )

    entries = []
    for entry in batch.batch.entries:
        if entry.WhichOneof("proof") == "exist":
            entries.append(CompressedBatchEntry(exist=compress_existence(entry.exist)))
        else:
            non = CompressedNonExistenceProof(key=entry.nonexist.key)
            for side in ("left", "right"):
                if entry.nonexist.HasField(side):
                    getattr(non, side).CopyFrom(compress_existence(getattr(entry.nonexist, side)))
            entries.append(CompressedBatchEntry(nonexist=non))
    return CommitmentProof(
        compressed=CompressedBatchProof(entries=entries, lookup_inners=lookup)
    )


@pytest.mark.parametrize("tree", list(SPECS))
@pytest.mark.parametrize("compressed", [False, True], ids=["batch", "compressed"])
def test_batch_proves_every_entry(tree, compressed):
    vectors, proof = make_batch(tree)
    if compressed:
        proof = compress(proof)
        assert len(proof.SerializeToString()) < len(make_batch(tree)[1].SerializeToString())
    for v in vectors:
        verify_claim(v["spec"], v["root"], proof, v["key"], v["value"])
    first = vectors[0]
    with pytest.raises(NoBatchEntry):
        verify_membership(first["spec"], first["root"], proof, first["key"] + b"!", first["value"])
    with pytest.raises(WrongRoot):
        verify_membership(first["spec"], vectors[1]["root"], proof, first["key"], first["value"])


def test_compressed_batch_rejects_out_of_range_lookup_index():
    _, batch = make_batch("iavl")
    proof = compress(batch)
    proof.compressed.entries[0].exist.path[0] = len(proof.compressed.lookup_inners)
    with pytest.raises(InvalidLookupIndex):
        verify_membership(IAVL_SPEC, b"", proof, b"k", b"v")
    proof.compressed.entries[0].exist.path[0] = -1
    with pytest.raises(InvalidLookupIndex):
        verify_membership(IAVL_SPEC, b"", proof, b"k", b"v")


# --- upstream unit data files ----------------------------------------------------------------


def field(case, name):
    """Go's encoding/json matches field names case-insensitively (TestDoHashData has 'PreImage')."""
    return next(value for key, value in case.items() if key.lower() == name.lower())


@pytest.mark.parametrize("name,case", load_unit("TestDoHashData.json").items())
def test_do_hash_data(name, case):
    digest = compute_hash(case["HashOp"], field(case, "Preimage").encode())
    assert digest.hex() == case["ExpectedHash"]


@pytest.mark.parametrize("name,case", load_unit("TestLeafOpData.json").items())
def test_leaf_op_data(name, case):
    op = parse(case["Op"], LeafOp())
    key, value = b64(case["Key"]), b64(case["Value"])
    if case["IsErr"]:
        with pytest.raises((EmptyKey, EmptyValue)):
            compute_leaf_hash(op, key, value)
    else:
        assert compute_leaf_hash(op, key, value) == b64(case["Expected"])


@pytest.mark.parametrize("name,case", load_unit("TestInnerOpData.json").items())
def test_inner_op_data(name, case):
    op = parse(case["Op"], InnerOp())
    if case["IsErr"]:
        with pytest.raises(EmptyChild):
            compute_inner_hash(op, b64(case["Child"]))
    else:
        assert compute_inner_hash(op, b64(case["Child"])) == b64(case["Expected"])


@pytest.mark.parametrize("name,case", load_unit("TestExistenceProofData.json").items())
def test_existence_proof_data(name, case):
    proof = parse(case["Proof"], ExistenceProof())
    if case["IsErr"]:
        with pytest.raises(MissingLeafOp):
            compute_existence_root(proof)
    else:
        assert compute_existence_root(proof) == b64(case["Expected"])


@pytest.mark.parametrize("name,case", load_unit("TestCheckLeafData.json").items())
def test_check_leaf_data(name, case):
    leaf = parse(case["Leaf"], LeafOp())
    spec = ProofSpec(leaf_spec=parse(case["Spec"], LeafOp()))
    if case["IsErr"]:
        with pytest.raises(LeafSpecMismatch):
            check_leaf_op_against_spec(leaf, spec)
    else:
        check_leaf_op_against_spec(leaf, spec)


# Go error text (TestCheckAgainstSpecData "Err") -> the rule that must fire here.
GO_ERRORS = [
    ("existence Proof needs defined LeafOp", MissingLeafOp),
    ("innerOps depth too", DepthOutOfRange),
    ("leaf, unexpected", LeafSpecMismatch),
    ("inner, unexpected HashOp", InnerHashMismatch),
    ("inner, IAVL height", InvalidIavlPrefix),
]


@pytest.mark.parametrize("name,case", load_unit("TestCheckAgainstSpecData.json").items())
def test_check_against_spec_data(name, case):
    proof = parse(case["Proof"], ExistenceProof())
    spec = parse(case["Spec"], ProofSpec())
    if not case["Err"]:
        check_existence_against_spec(proof, spec)
        return
    [error] = [cls for prefix, cls in GO_ERRORS if case["Err"].startswith(prefix)]
    with pytest.raises(error):
        check_existence_against_spec(proof, spec)


EMPTY_BRANCH_CASES = load_unit("TestEmptyBranchData.json")


@pytest.mark.parametrize(
    "case", EMPTY_BRANCH_CASES, ids=[f"case{i}" for i in range(len(EMPTY_BRANCH_CASES))]
)
def test_empty_branch_data(case):
    op = parse(case["Op"], InnerOp())
    spec = parse(case["Spec"], ProofSpec())
    check_inner_op_against_spec(op, spec, 1)
    assert has_empty_left_branches(spec.inner_spec, op) is case["IsLeft"]
    assert has_empty_right_branches(spec.inner_spec, op) is case["IsRight"]


# --- IAVL / Tendermint prefix rules (upstream ops_test.go cases) -----------------------------


def zigzag(n):
    unsigned = (n << 1) ^ (n >> 63)
    out = bytearray()
    while unsigned >= 0x80:
        out.append(unsigned & 0x7F | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


VALID_IAVL_INNER_PREFIX = zigzag(5) + zigzag(10) + zigzag(20) + b"\x20"


@pytest.mark.parametrize(
    "prefix,layer,hash_op",
    [
        (b"", 1, SHA256),
        (zigzag(-1), 1, SHA256),
        (zigzag(5), 1, SHA256),
        (zigzag(5) + zigzag(-1), 1, SHA256),
        (zigzag(5) + zigzag(10), 1, SHA256),
        (zigzag(5) + zigzag(10) + zigzag(-1), 1, SHA256),
        (VALID_IAVL_INNER_PREFIX, 0, SHA256),
        (VALID_IAVL_INNER_PREFIX + b"\x01", 1, SHA256),
        (VALID_IAVL_INNER_PREFIX, 1, 0),
        (VALID_IAVL_INNER_PREFIX, 6, SHA256),
        (b"\xff" * 11, 1, SHA256),
    ],
    ids=[
        "empty",
        "negative-height",
        "no-size",
        "negative-size",
        "no-version",
        "negative-version",
        "leaf-with-remainder",
        "inner-remainder-2",
        "inner-not-sha256",
        "height-below-layer",
        "varint-overflow",
    ],
)
def test_iavl_prefix_rejected(prefix, layer, hash_op):
    with pytest.raises(InvalidIavlPrefix):
        check_iavl_prefix(prefix, hash_op, layer)


def test_iavl_prefix_accepted():
    check_iavl_prefix(VALID_IAVL_INNER_PREFIX, SHA256, 1)
    check_iavl_prefix(VALID_IAVL_INNER_PREFIX + b"\x00" * 33, SHA256, 5)
    check_iavl_prefix(zigzag(0) + zigzag(1) + zigzag(7), SHA256, 0)


@pytest.mark.parametrize("prefix,suffix", [(b"\x01", b"\x01"), (b"\x01\x02", b"")])
def test_tendermint_prefix_accepted(prefix, suffix):
    check_tendermint_prefix(InnerOp(hash=SHA256, prefix=prefix, suffix=suffix))


@pytest.mark.parametrize(
    "prefix,suffix",
    [
        (b"", b""),
        (b"\x00", b"\x01" * 32),
        (b"\x02" + bytes(32), b""),
        (b"\x01" + bytes(32), b"\x01" * 32),
    ],
    ids=["empty", "left-child-bad-prefix", "right-child-bad-prefix", "both-siblings"],
)
def test_tendermint_prefix_rejected_under_tendermint_spec(prefix, suffix):
    op = InnerOp(hash=SHA256, prefix=prefix, suffix=suffix)
    with pytest.raises(InvalidTendermintPrefix):
        check_inner_op_against_spec(op, TENDERMINT_SPEC, 1)


@pytest.mark.parametrize(
    "op,error",
    [
        (InnerOp(hash=SHA256, prefix=b"\x01", suffix=bytes(32)), None),
        (InnerOp(hash=SHA256, prefix=b"\x01" + bytes(32)), None),
        (InnerOp(hash=SHA512, prefix=b"\x01", suffix=bytes(32)), InnerHashMismatch),
        (InnerOp(hash=SHA256, prefix=b"\x00" + bytes(32)), InnerLooksLikeLeaf),
        (InnerOp(hash=SHA256, prefix=b"", suffix=bytes(32)), InnerPrefixLength),
        (InnerOp(hash=SHA256, prefix=b"\x01" + bytes(33)), InnerPrefixLength),
        (InnerOp(hash=SHA256, prefix=b"\x01", suffix=bytes(31)), MalformedSuffix),
    ],
    ids=["left-child", "right-child", "hash", "leaf-prefix", "short", "long", "suffix"],
)
def test_inner_op_rules_under_smt_spec(op, error):
    if error is None:
        check_inner_op_against_spec(op, SMT_SPEC, 1)
    else:
        with pytest.raises(error):
            check_inner_op_against_spec(op, SMT_SPEC, 1)


def test_forged_non_existence_with_oversized_max_prefix_is_rejected():
    """Upstream TestForgeNonExistenceProofWithIncorrectMaxPrefixLength."""
    spec = ProofSpec()
    spec.CopyFrom(TENDERMINT_SPEC)
    spec.inner_spec.max_prefix_length = 33
    leaf = spec.leaf_spec

    def op(prefix, suffix=b""):
        return InnerOp(hash=SHA256, prefix=prefix, suffix=suffix)

    a, b, b2, c = (compute_leaf_hash(leaf, k, k) for k in (b"a", b"b", b"b2", b"c"))
    a_exist = ExistenceProof(
        key=b"a", value=b"a", leaf=leaf, path=[op(b"\x01", b + b2), op(b"\x01", c)]
    )
    b_exist = ExistenceProof(
        key=b"b", value=b"b", leaf=leaf, path=[op(b"\x01" + a, b2), op(b"\x01", c)]
    )
    root = compute_existence_root(a_exist)
    assert compute_existence_root(b_exist) == root
    with pytest.raises(InvalidInnerSpec):
        verify_existence(spec, root, a_exist, b"a", b"a")
    with pytest.raises(InvalidInnerSpec):
        verify_non_existence(spec, root, NonExistenceProof(key=b"a", right=b_exist), b"a")


def test_inner_hash_longer_than_child_size_is_rejected():
    spec = ProofSpec()
    spec.CopyFrom(SMT_SPEC)
    spec.inner_spec.hash = SHA512
    leaf = spec.leaf_spec
    proof = ExistenceProof(
        key=b"k", value=b"v", leaf=leaf, path=[InnerOp(hash=SHA512, prefix=b"\x01" + bytes(32))]
    )
    with pytest.raises(ChildTooLarge):
        verify_existence(spec, compute_existence_root(proof), proof, b"k", b"v")


def test_neighbours_in_a_four_leaf_tree():
    _, proofs = tendermint_tree([(bytes([k]), b"v") for k in b"abcd"])
    paths = [proofs[bytes([k])].exist.path for k in b"abcd"]
    spec = TENDERMINT_SPEC.inner_spec
    assert [is_left_most(spec, p) for p in paths] == [True, False, False, False]
    assert [is_right_most(spec, p) for p in paths] == [False, False, False, True]
    neighbours = {
        (i, j) for i in range(4) for j in range(4) if is_left_neighbor(spec, paths[i], paths[j])
    }
    assert neighbours == {(0, 1), (1, 2), (2, 3)}


def test_non_adjacent_leaves_do_not_prove_absence():
    root, proofs = tendermint_tree([(bytes([k]), b"v") for k in b"aceg"])
    adjacent = NonExistenceProof(left=proofs[b"c"].exist, right=proofs[b"e"].exist)
    verify_non_existence(TENDERMINT_SPEC, root, adjacent, b"d")
    skipping = NonExistenceProof(left=proofs[b"a"].exist, right=proofs[b"e"].exist)
    with pytest.raises(NotNeighbors):
        verify_non_existence(TENDERMINT_SPEC, root, skipping, b"d")


def test_right_proof_that_is_not_left_most_does_not_prove_absence():
    v = load_vector("tendermint/nonexist_middle")
    forged = NonExistenceProof(right=v["proof"].nonexist.right)
    with pytest.raises(NotLeftMost):
        verify_non_existence(TENDERMINT_SPEC, v["root"], forged, v["key"])


# --- chained (multistore) proofs -------------------------------------------------------------


@pytest.fixture(params=["smt", "iavl"])
def multistore(request):
    tree = request.param
    exist = load_vector(f"{tree}/exist_middle")
    absent = load_vector(f"{tree}/nonexist_middle")
    stores = [
        (b"acc", hashlib.sha256(b"acc").digest()),
        (b"ibc", exist["root"]),
        (b"market", absent["root"]),
        (b"zk", hashlib.sha256(b"zk").digest()),
    ]
    app_hash, outer = tendermint_tree(stores)
    return {
        "specs": [SPECS[tree], TENDERMINT_SPEC],
        "app_hash": app_hash,
        "outer": outer,
        "exist": exist,
        "absent": absent,
    }


def test_chained_membership(multistore):
    m, e = multistore, multistore["exist"]
    proofs = [e["proof"], m["outer"][b"ibc"]]
    verify_chained_membership(m["specs"], m["app_hash"], proofs, [b"ibc", e["key"]], e["value"])


def test_chained_membership_rejections(multistore):
    m, e = multistore, multistore["exist"]
    specs, app_hash, keys = m["specs"], m["app_hash"], [b"ibc", e["key"]]
    proofs = [e["proof"], m["outer"][b"ibc"]]
    with pytest.raises(ValueMismatch):
        verify_chained_membership(specs, app_hash, proofs, keys, e["value"] + b"!")
    with pytest.raises(KeyMismatch):
        verify_chained_membership(specs, app_hash, proofs, [b"acc", e["key"]], e["value"])
    with pytest.raises(ValueMismatch):
        wrong_store = [e["proof"], m["outer"][b"market"]]
        verify_chained_membership(specs, app_hash, wrong_store, [b"market", e["key"]], e["value"])
    with pytest.raises(WrongRoot):
        other_root = hashlib.sha256(app_hash).digest()
        verify_chained_membership(specs, other_root, proofs, keys, e["value"])
    with pytest.raises(Ics23Error):
        verify_chained_membership(specs, app_hash, proofs[::-1], keys, e["value"])
    with pytest.raises(ChainShapeMismatch):
        verify_chained_membership(specs, app_hash, proofs[:1], keys, e["value"])
    with pytest.raises(ChainShapeMismatch):
        verify_chained_membership([], app_hash, [], [], e["value"])
    with pytest.raises(EmptyValue):
        verify_chained_membership(specs, app_hash, proofs, keys, b"")
    absent = m["absent"]
    with pytest.raises(WrongProofType):
        verify_chained_membership(
            specs, app_hash, [absent["proof"], m["outer"][b"market"]], [b"market", absent["key"]],
            b"value",
        )


def test_chained_non_membership(multistore):
    m, a = multistore, multistore["absent"]
    proofs = [a["proof"], m["outer"][b"market"]]
    verify_chained_non_membership(m["specs"], m["app_hash"], proofs, [b"market", a["key"]])


def test_chained_non_membership_rejections(multistore):
    m, a, e = multistore, multistore["absent"], multistore["exist"]
    specs, app_hash = m["specs"], m["app_hash"]
    proofs = [a["proof"], m["outer"][b"market"]]
    left_key = a["proof"].nonexist.left.key
    with pytest.raises(KeyOutOfRange):
        verify_chained_non_membership(specs, app_hash, proofs, [b"market", left_key])
    with pytest.raises(KeyMismatch):
        verify_chained_non_membership(specs, app_hash, proofs, [b"ibc", a["key"]])
    with pytest.raises(ValueMismatch):
        verify_chained_non_membership(
            specs, app_hash, [a["proof"], m["outer"][b"ibc"]], [b"ibc", a["key"]]
        )
    with pytest.raises(WrongRoot):
        verify_chained_non_membership(
            specs, hashlib.sha256(app_hash).digest(), proofs, [b"market", a["key"]]
        )
    with pytest.raises(WrongProofType):
        verify_chained_non_membership(
            specs, app_hash, [e["proof"], m["outer"][b"ibc"]], [b"ibc", e["key"]]
        )
    with pytest.raises(ChainShapeMismatch):
        verify_chained_non_membership(specs, app_hash, proofs, [a["key"]])


# --- malformed input -------------------------------------------------------------------------


def test_decode_rejects_garbage():
    with pytest.raises(ProofDecodeError):
        decode_commitment_proof(b"\x0a\xff")
    with pytest.raises(WrongProofType):
        verify_membership(IAVL_SPEC, b"", decode_commitment_proof(b""), b"k", b"v")


def test_non_existence_key_field_is_not_checked():
    """Upstream ignores NonExistenceProof.key; the mutation test below relies on clearing it."""
    for case in [c for c in CASES if "/nonexist" in c]:
        v = load_vector(case)
        v["proof"].nonexist.ClearField("key")
        verify_non_membership(v["spec"], v["root"], v["proof"], v["key"])


def mutation_targets():
    targets = []
    for case in CASES:
        v = load_vector(case)
        if not v["value"]:
            v["proof"].nonexist.ClearField("key")
        targets.append((case, v["proof"].SerializeToString(), v))
    return targets


MUTATION_TARGETS = mutation_targets()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_proof_never_verifies(data):
    case, encoded, v = data.draw(st.sampled_from(MUTATION_TARGETS), label="vector")
    mutated = bytearray(encoded)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        position = data.draw(st.integers(0, len(mutated) - 1), label="position")
        mutated[position] ^= data.draw(st.integers(1, 255), label="xor")
    assume(bytes(mutated) != encoded)
    with pytest.raises(Ics23Error):
        proof = decode_commitment_proof(bytes(mutated))
        verify_claim(v["spec"], v["root"], proof, v["key"], v["value"])
