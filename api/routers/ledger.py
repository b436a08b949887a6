"""Receipts and the auditor's view of the ledger.

``GET /v1/receipts/{access_id}`` needs a key: the account that made the access sees its
receipt, an admin key sees any; anyone else gets 404, as for a missing access. The
auditor endpoints (checkpoints, consistency proofs, ledger info) and the embedded
chain's read-only JSON-RPC are public: they reveal sizes, hashes and signatures only,
which is what a transparency log publishes so that anyone can check it.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import Body, Query, Request
from fastapi.responses import JSONResponse

from api.deps import LedgerDep, PrincipalDep, SessionsDep, SettingsDep
from api.routers import Router
from api.schemas import (
    AnchorOut,
    CheckpointOut,
    ConsistencyOut,
    LedgerInfo,
    ReceiptOut,
)
from ledger import CheckpointInfo, Ledger
from oceanmart.accounts import Scope
from oceanmart.errors import NotFound
from oceanmart.settings import Settings

router = Router(tags=["ledger"])
RPC_PATH = "/v1/ledger/rpc"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _checkpoint(cp: CheckpointInfo) -> CheckpointOut:
    anchor = None
    if cp.anchor is not None:
        a = cp.anchor
        anchor = AnchorOut(
            status=a.status,
            chain_id=a.chain_id,
            contract=a.contract,
            transaction=a.tx_hash,
            block_number=a.block_number,
        )
    return CheckpointOut(
        size=cp.size, root=_b64(cp.root), note=cp.note, created_at=cp.created_at, anchor=anchor
    )


def _rpc_url(request: Request, settings: Settings) -> str:
    """Where verifiers reach the chain: the configured node, or this server's RPC."""
    if settings.chain_url:
        from ledger._chain import _safe_url

        return _safe_url(settings.chain_url)
    return str(request.base_url).rstrip("/") + RPC_PATH


@router.get("/v1/receipts/{access_id}", response_model=ReceiptOut)
def receipt(
    access_id: str,
    request: Request,
    principal: PrincipalDep,
    ledger: LedgerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """The receipt of one access: leaf, inclusion proof, signed checkpoint and anchor.

    503 ``receipt-pending`` (with Retry-After) while its checkpoint waits for the chain.
    """
    account = None if principal.has(Scope.ADMIN) else principal.account_id
    found = ledger.receipt(
        sessions, access_id, account_id=account, rpc_url=_rpc_url(request, settings)
    )
    return found.to_json()


@router.get("/v1/ledger", response_model=LedgerInfo)
def info(
    request: Request, ledger: LedgerDep, sessions: SessionsDep, settings: SettingsDep
) -> LedgerInfo:
    """The log's origin, checkpoint key, size and anchoring chain (public; the chain and
    contract are those of the latest anchor, null before the first)."""
    known = ledger.known_contract(sessions)
    chain_id, contract = known if known else (None, None)
    return LedgerInfo(
        origin=settings.ledger_origin,
        verifier_key=ledger.signer.verifier_key,
        size=ledger.size(sessions),
        chain_id=chain_id,
        contract=contract,
        rpc_url=_rpc_url(request, settings),
    )


@router.get("/v1/ledger/checkpoint", response_model=CheckpointOut)
def latest_checkpoint(ledger: LedgerDep, sessions: SessionsDep) -> CheckpointOut:
    """The latest signed checkpoint and its anchor (public)."""
    return _checkpoint(ledger.latest_checkpoint(sessions))


@router.get("/v1/ledger/checkpoints/{size}", response_model=CheckpointOut)
def checkpoint_at(size: int, ledger: LedgerDep, sessions: SessionsDep) -> CheckpointOut:
    """The checkpoint of one tree size (public)."""
    return _checkpoint(ledger.checkpoint_at(sessions, size))


@router.get("/v1/ledger/consistency", response_model=ConsistencyOut)
def consistency(
    first: Annotated[int, Query(description="Smaller checkpoint size")],
    second: Annotated[int, Query(description="Larger checkpoint size")],
    ledger: LedgerDep,
    sessions: SessionsDep,
) -> ConsistencyOut:
    """RFC 9162 consistency proof between two checkpointed sizes (public)."""
    p = ledger.consistency(sessions, first, second)
    return ConsistencyOut(
        first=p.first,
        second=p.second,
        first_root=_b64(p.first_root),
        second_root=_b64(p.second_root),
        proof=[_b64(h) for h in p.proof],
    )


@router.post(RPC_PATH, include_in_schema=True)
def rpc(
    ledger: LedgerDep,
    settings: SettingsDep,
    payload: Annotated[Any, Body()],
) -> JSONResponse:
    """Read-only Ethereum JSON-RPC of the embedded chain (eth_chainId, eth_call,
    eth_getCode, eth_getLogs, eth_getTransactionReceipt...), so verifiers can check
    anchors without a node of their own. 404 when an external chain is configured."""
    if settings.chain_url:
        raise NotFound("this server anchors on an external chain: ask its node")
    return JSONResponse(_answer(ledger, payload))


def _answer(ledger: Ledger, payload: Any) -> Any:
    if isinstance(payload, list):
        return [_answer(ledger, p) for p in payload]
    if not isinstance(payload, dict) or not isinstance(payload.get("method"), str):
        return _rpc_error(None, -32600, "invalid request")
    rid = payload.get("id")
    params = payload.get("params") or []
    if not isinstance(params, list):
        return _rpc_error(rid, -32602, "params must be a list")
    chain = ledger.embedded
    assert chain is not None
    try:
        result = chain.rpc(payload["method"], params)
    except PermissionError as exc:
        return _rpc_error(rid, -32601, str(exc))
    except (ValueError, TypeError, KeyError) as exc:
        return _rpc_error(rid, -32602, f"invalid params ({type(exc).__name__})")
    except Exception as exc:  # a revert or a bad call: a JSON-RPC error, not a 500
        return _rpc_error(rid, -32000, type(exc).__name__)
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def _rpc_error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
