# pragma version ~=0.4.3
"""
@title OceanMart ledger anchors
@notice Append-only map (tree size -> Merkle root) of the ledger's signed checkpoints.
        Only writers named by the owner may anchor; a size is written once, and sizes
        only grow. `note_key` is the Ed25519 public key that signs the checkpoints, so a
        verifier who trusts this contract also learns which key to trust.
"""

event Anchored:
    size: indexed(uint256)
    root: bytes32
    writer: indexed(address)

event WriterSet:
    writer: indexed(address)
    allowed: bool

owner: public(address)
note_key: public(bytes32)
writers: public(HashMap[address, bool])
roots: public(HashMap[uint256, bytes32])
latest_size: public(uint256)
anchor_count: public(uint256)


@deploy
def __init__(note_key: bytes32):
    self.owner = msg.sender
    self.note_key = note_key
    self.writers[msg.sender] = True
    log WriterSet(writer=msg.sender, allowed=True)


@external
def set_writer(writer: address, allowed: bool):
    assert msg.sender == self.owner, "only the owner names writers"
    self.writers[writer] = allowed
    log WriterSet(writer=writer, allowed=allowed)


@external
def anchor(size: uint256, root: bytes32):
    assert self.writers[msg.sender], "not a writer"
    assert size > 0, "empty tree"
    assert root != empty(bytes32), "empty root"
    assert size > self.latest_size, "size already anchored or smaller than the latest"
    self.roots[size] = root
    self.latest_size = size
    self.anchor_count += 1
    log Anchored(size=size, root=root, writer=msg.sender)
