"""The one error tree of OceanMart.

Domain code raises these; it never knows about HTTP. The API maps each class to a
status code and a problem+json ``type`` in one place (``api/errors.py``) and the CLI
prints ``detail`` as a one-line message. ``code`` is the stable, machine-readable
name of the error kind; never reuse one for a different meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class OceanMartError(Exception):
    """Base of every error the platform raises on purpose."""

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "OceanMart error"

    def __init__(self, detail: str, *, extensions: Mapping[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions: dict[str, object] = dict(extensions or {})


class ConfigurationError(OceanMartError):
    code = "configuration"
    title = "Configuration error"


class InvalidInput(OceanMartError):
    code = "invalid-input"
    title = "Invalid input"


class InvalidParameter(InvalidInput):
    """A named request parameter is malformed; ``parameter`` names it."""

    code = "invalid-parameter"
    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}", extensions={"parameter": parameter})
        self.parameter = parameter


class EmptySelection(InvalidInput):
    code = "empty-selection"
    title = "The selection contains no data"


class NotFound(OceanMartError):
    code = "not-found"
    title = "Not found"


class AlreadyExists(OceanMartError):
    code = "already-exists"
    title = "Already exists"


class AuthenticationRequired(OceanMartError):
    code = "unauthenticated"
    title = "Authentication required"


class InvalidKey(AuthenticationRequired):
    """Malformed, unknown or revoked key (deliberately not told apart)."""

    code = "invalid-key"
    title = "Invalid API key"


class ExpiredKey(AuthenticationRequired):
    code = "expired-key"
    title = "API key expired"


class PermissionDenied(OceanMartError):
    code = "forbidden"
    title = "Forbidden"


class MissingScope(PermissionDenied):
    code = "insufficient-scope"
    title = "The key lacks a required scope"


class NotEntitled(PermissionDenied):
    code = "not-entitled"
    title = "No entitlement covers this data"


class RequestTooLarge(OceanMartError):
    code = "request-too-large"
    title = "The request exceeds the per-request limit"


class TooManyRequests(OceanMartError):
    """A per-key limit (request rate, concurrent heavy requests); ``retry_after`` in
    seconds says when to try again."""

    code = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, extensions={"retry_after": retry_after})
        self.retry_after = retry_after


class Cancelled(OceanMartError):
    """The work was stopped because nobody waits for it any more (client went away,
    job cancelled)."""

    code = "cancelled"
    title = "Cancelled"


class PaymentRequired(OceanMartError):
    """Access or an order needs payment first; the body says how to get a quote."""

    code = "payment-required"
    title = "Payment required"


class QuotaExhausted(PaymentRequired):
    """An entitlement's cell quota for this period cannot cover the delivery."""

    code = "quota-exhausted"
    title = "The entitlement's quota is exhausted"


class InsufficientCredits(PaymentRequired):
    code = "insufficient-credits"
    title = "The prepaid credit balance does not cover the order"


class Conflict(OceanMartError):
    """The request is valid but clashes with the current state of a resource."""

    code = "conflict"
    title = "Conflict"


class NotForSale(Conflict):
    code = "not-for-sale"
    title = "The product has no price book"


class QuoteExpired(Conflict):
    code = "quote-expired"
    title = "The quote has expired"


class QuoteSuperseded(Conflict):
    """The price book or the buyer's free quota changed since the quote: quote again."""

    code = "quote-superseded"
    title = "The quote no longer applies"


class QuoteTampered(Conflict):
    """The stored quote no longer matches its operator signature."""

    code = "quote-signature-invalid"
    title = "The quote's signature does not verify"


class InvalidOrderState(Conflict):
    code = "invalid-order-state"
    title = "The order cannot make this transition"


class InvalidWebhook(InvalidInput):
    """A payment webhook whose signature, timestamp or body does not verify."""

    code = "invalid-webhook"
    title = "Invalid webhook"


class PaymentProviderError(OceanMartError):
    """The payment provider failed or refused a call; nothing was charged by us."""

    code = "payment-provider-error"
    title = "The payment provider failed"


class CsrfFailed(PermissionDenied):
    code = "csrf-failed"
    title = "The form's CSRF token is missing or wrong"


class IngestError(OceanMartError):
    code = "ingest-failed"
    title = "Ingest failed"


class SourceError(IngestError):
    """A source file is missing, unreadable or not what its spec says."""

    code = "bad-source"
    title = "Bad source file"


class CorpusUnavailable(OceanMartError):
    code = "corpus-unavailable"
    title = "Corpus file cannot be fetched"


class LedgerError(OceanMartError):
    """The ledger cannot do what was asked (base of the ledger's errors)."""

    code = "ledger-error"
    title = "Ledger error"


class LedgerCorrupted(LedgerError):
    """Stored leaves, nodes, checkpoints or anchors disagree: the log was tampered with."""

    code = "ledger-corrupted"
    title = "The ledger failed a consistency check"


class ChainUnavailable(LedgerError):
    """The anchoring chain cannot be reached; appends and checkpoints go on meanwhile."""

    code = "chain-unavailable"
    title = "The anchoring chain is unavailable"


class ReceiptPending(LedgerError):
    """The access is logged but its checkpoint is not anchored yet: retry shortly."""

    code = "receipt-pending"
    title = "The receipt is not ready yet"


class VerificationFailed(OceanMartError):
    """A receipt, proof or checkpoint does not verify; ``detail`` says why."""

    code = "verification-failed"
    title = "Verification failed"


def all_error_types() -> list[type[OceanMartError]]:
    """Every error class in the tree, base first (used for docs and tests)."""
    seen: list[type[OceanMartError]] = []
    stack: list[type[OceanMartError]] = [OceanMartError]
    while stack:
        cls = stack.pop(0)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
