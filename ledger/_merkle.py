"""RFC 9162 Merkle tree hashing, proofs and their verification (pure, no I/O).

Hand-written (about 150 lines) rather than taken from pymerkle: the log keeps its perfect
subtree hashes in the database, and proofs must be built from those few stored nodes
without loading the leaves, which pymerkle's storage model does not allow. The
verifiers follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 and pass the golden vectors of
transparency-dev/merkle (``tests/ledger/vectors``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# A perfect subtree: (level, index) covers leaves [index * 2**level, (index + 1) * 2**level).
Node = tuple[int, int]
NodeGetter = Callable[[int, int], bytes]


class ProofError(Exception):
    """A proof does not verify; the message says what was expected and what was found."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees whose concatenation is [lo, hi), left to right.

    ``lo`` must be aligned as in RFC 9162's recursive splits (a multiple of the largest
    power of two not above ``hi - lo``), which every range the proofs ask for is.
    """
    out: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def subtree_root(lo: int, hi: int, get: NodeGetter) -> bytes:
    """MTH(D[lo:hi]) from its perfect subtrees, folded from the right."""
    if hi == lo:
        return EMPTY_ROOT
    nodes = perfect_nodes(lo, hi)
    acc = get(*nodes[-1])
    for level, index in reversed(nodes[:-1]):
        acc = node_hash(get(level, index), acc)
    return acc


def inclusion_path(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(subtree_root(lo + k, hi, get))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k, get))
            lo += k
    path.reverse()
    return path


def consistency_path(first: int, second: int, get: NodeGetter) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 section 2.1.4.1 (empty when first == second)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    path: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(subtree_root(lo + k, hi, get))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k, get))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        path.append(subtree_root(lo, hi, get))
    path.reverse()
    return path


def needed_nodes(build: Callable[[NodeGetter], object]) -> set[Node]:
    """Which stored nodes ``build`` reads (the proofs' reads do not depend on values)."""
    seen: set[Node] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return EMPTY_ROOT

    build(record)
    return seen


def _check_sizes(**hashes: bytes) -> None:
    for name, value in hashes.items():
        if len(value) != HASH_SIZE:
            raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives for leaf hash ``leaf`` at ``index`` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_sizes(leaf_hash=leaf, **{f"proof[{i}]": p for i, p in enumerate(proof)})
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``."""
    got = root_from_inclusion(index, size, leaf, proof)
    if got != root:
        raise ProofError(
            f"inclusion proof gives root {got.hex()}, the checkpoint says {root.hex()}"
        )


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Raise ProofError unless the tree of ``second_root`` extends that of ``first_root``."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("equal sizes take an empty proof")
        if first_root != second_root:
            raise ProofError("equal sizes with different roots")
        return
    _check_sizes(
        first_root=first_root,
        second_root=second_root,
        **{f"proof[{i}]": p for i, p in enumerate(proof)},
    )
    path = list(proof)
    if not path:
        raise ProofError("empty consistency proof")
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != first_root:
        raise ProofError(f"consistency proof gives first root {fr.hex()}, not {first_root.hex()}")
    if sr != second_root:
        raise ProofError(f"consistency proof gives second root {sr.hex()}, not {second_root.hex()}")


class CompactRange:
    """The right border of a growing tree: the roots of its perfect subtrees, largest first.

    Appending a leaf merges equal-sized subtrees; every merge is a new perfect node,
    which the log stores so later proofs need not read leaves.
    """

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        levels = [level for level, _ in perfect_nodes(0, size)]
        if len(levels) != len(hashes):
            raise ValueError(f"a tree of size {size} has {len(levels)} border nodes")
        self.size = size
        self.nodes: list[tuple[int, bytes]] = list(zip(levels, hashes, strict=True))

    def append(self, leaf: bytes, out: list[tuple[int, int, bytes]]) -> None:
        """Add leaf hash ``leaf``; push every new perfect node (level, index, hash) to out."""
        index, level, h = self.size, 0, leaf
        out.append((0, index, h))
        nodes = self.nodes
        while nodes and nodes[-1][0] == level:
            h = node_hash(nodes.pop()[1], h)
            level += 1
            index >>= 1
            out.append((level, index, h))
        nodes.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1][1]
        for _, h in reversed(self.nodes[:-1]):
            acc = node_hash(h, acc)
        return acc
