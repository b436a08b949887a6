"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note).

A checkpoint body is three lines, ``origin``, tree size and base64 root hash; the note
adds one signature line ``— <key name> <base64(key id || Ed25519 signature)>``. The
Ed25519 key is derived from the operator's secp256k1 key (HMAC-SHA256 of a fixed
label), so one configured secret signs quotes, checkpoints and anchor transactions,
and the checkpoint key is still the usual signed-note algorithm. Its public key is
stored in the anchoring contract (``note_key``), which ties the two together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_ALG_ED25519 = b"\x01"
_DERIVATION_LABEL = b"oceanmart/ledger/checkpoint-ed25519/v1"
_DASH = "\u2014"  # the em dash that starts a signature line


class NoteError(Exception):
    """A note or checkpoint is malformed or its signature does not verify."""


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ALG_ED25519 + public).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


class NoteSigner:
    """Signs checkpoints with the Ed25519 key derived from the operator key."""

    def __init__(self, name: str, operator_key: bytes) -> None:
        if not name or any(c.isspace() or c == "+" for c in name):
            raise ValueError("a note key name has no spaces and no '+'")
        seed = hmac.new(operator_key, _DERIVATION_LABEL, hashlib.sha256).digest()
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._id = _key_id(name, self.public)

    @property
    def verifier_key(self) -> str:
        """The vkey string (``name+hex id+base64(0x01 || public key)``) verifiers pin."""
        encoded = base64.b64encode(_ALG_ED25519 + self.public).decode()
        return f"{self.name}+{self._id.hex()}+{encoded}"

    def sign(self, checkpoint: Checkpoint) -> str:
        body = checkpoint.body()
        signature = self._key.sign(body.encode())
        line = base64.b64encode(self._id + signature).decode()
        return f"{body}\n{_DASH} {self.name} {line}\n"


@dataclass(frozen=True, slots=True)
class VerifierKey:
    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        try:
            name, hex_id, encoded = vkey.split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            key_id = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error):
            raise NoteError("the verifier key is not `name+keyid+base64key`") from None
        if raw[:1] != _ALG_ED25519 or len(raw) != 33 or len(key_id) != 4:
            raise NoteError("the verifier key is not an Ed25519 signed-note key")
        if _key_id(name, raw[1:]) != key_id:
            raise NoteError("the verifier key's id does not match its name and key")
        return cls(name, key_id, raw[1:])


def open_checkpoint(note: str, vkey: VerifierKey) -> Checkpoint:
    """Verify ``note``'s signature by ``vkey`` and return the checkpoint it carries."""
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("the checkpoint is not a signed note (no signature block)")
    body += "\n"
    verified = False
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError(f"malformed signature line {line!r}")
        if parts[1] != vkey.name:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if base64.b64encode(raw).decode() != parts[2]:
            # b64decode ignores the unused low bits of the last character, so several
            # spellings decode alike; the unsigned signature line must have one form.
            raise NoteError("a signature is not in canonical base64")
        if raw[:4] != vkey.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(vkey.public).verify(raw[4:], body.encode())
        except InvalidSignature:
            raise NoteError(f"the checkpoint signature by {vkey.name} does not verify") from None
        verified = True
    if not verified:
        raise NoteError(f"the checkpoint carries no signature by {vkey.name}")
    lines = body.split("\n")
    if len(lines) < 4 or not lines[1].isdigit() or (lines[1] != "0" and lines[1][0] == "0"):
        raise NoteError("the checkpoint body is not origin, size and root")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint root is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint root is not a SHA-256 hash")
    return Checkpoint(lines[0], int(lines[1]), root)
