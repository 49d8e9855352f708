"""The one error hierarchy of securefl.

Every error raised on purpose by ``crypto_backends`` or ``securefl`` derives from
:class:`SecureFLError`, so a caller can catch the whole family in one clause.
Where a Python built-in names the same category (a wrong value, a wrong type) the
error derives from it too, so generic ``except ValueError`` handlers keep working.

Messages say what is wrong *and* what to do instead.  Decryption failures say no
more than that: they must not become an oracle about the secret.
"""

from __future__ import annotations

from typing import Literal


class SecureFLError(Exception):
    """Base class of every error securefl raises on purpose."""


class CryptoError(SecureFLError):
    """A cryptographic operation could not be carried out."""


class UnknownSchemeError(CryptoError, LookupError):
    """No scheme is registered under the requested name."""


class InsecureParameterError(CryptoError, ValueError):
    """Parameters below 112-bit security (or otherwise unsafe) were requested."""


class InvalidParameterError(CryptoError, ValueError):
    """Scheme parameters are inconsistent or out of range."""


class InvalidInputError(CryptoError, ValueError):
    """A plaintext vector cannot be protected (NaN, inf, wrong dtype or shape)."""


class KeyRoleError(CryptoError, TypeError):
    """A key was used by a role that must not hold it (e.g. an aggregator decrypting).

    Also raised for a key that cannot play its role at all: a party key naming no
    party, or a key set without the authority key a scheme needs.
    """


class MalformedCiphertextError(CryptoError, ValueError):
    """Serialized bytes are truncated, garbled, or structurally invalid."""


MismatchField = Literal["scheme", "key", "round", "length"]


class MismatchError(MalformedCiphertextError):
    """An envelope, key or share does not belong here: :attr:`field` names what differs.

    ``"scheme"``: another scheme or format version; ``"key"``: made under another key
    set (its fingerprint differs); ``"round"``: another round; ``"length"``: another
    number of values (or chunks, or slots) than expected.  The message says which
    values differ and how to make them agree.  It is a :class:`MalformedCiphertextError`
    because the bytes cannot be used here, whatever their own structure.
    """

    FIELDS: tuple[MismatchField, ...] = ("scheme", "key", "round", "length")

    def __init__(self, field: MismatchField, message: str) -> None:
        if field not in self.FIELDS:
            raise ValueError(f"unknown mismatch field {field!r}; one of {self.FIELDS}")
        super().__init__(message)
        self.field: MismatchField = field

    def __reduce__(self) -> tuple[type[MismatchError], tuple[MismatchField, str]]:
        return type(self), (self.field, str(self))


class DecodingOverflowError(CryptoError, ArithmeticError):
    """A decoded aggregate left the range its encoding can represent.

    Raised instead of silently wrapping around; the fix is more headroom (fewer
    parties per aggregate, smaller weights, fewer bits per value, wider slots).
    """


class RevealBudgetError(DecodingOverflowError):
    """A reveal needed more work than its budget allows (fe: more giant steps of the discrete logarithm).

    The budget is a small multiple of an honest reveal's work, so values placed far from zero
    (a party encrypting beyond clip, or sums far outside the table) cannot make the aggregator
    spend more; the fix for honest sums is a larger ``weight_unit`` or ``dlog_table_bits``.
    """


class ShareError(CryptoError):
    """A decryption or unmasking share, or a setup message, failed its check (forged, replayed, misrouted).

    The engine names the sender in the round's ``dropped`` and goes on with the
    other shares when enough valid ones remain.
    """


class AggregateMismatchError(CryptoError):
    """The aggregator showed a party inconsistent or forged round state: a party refuses to reveal for that round.

    Raised by the party (which logs it and lets out nothing for the round) when what
    the aggregator presents does not hold together: an aggregate or survivor set
    that the contributors' own signatures do not vouch for (too few valid
    signatures, signatures of another round, key set or federation, or over
    another set), contributors naming different global models, or a request to
    vouch for a second, different set in one round.  An honest aggregator never
    causes it: the fix is on the aggregator's side (or the network's), not the
    party's.
    """


class DecryptionError(CryptoError):
    """Decryption failed. Deliberately says nothing more."""


class PolicyError(CryptoError, PermissionError):
    """A key authority refused a request under its inference-prevention policy."""


class KeyReuseError(CryptoError, PermissionError):
    """A one-time key (one round's pads) was asked to encrypt a second, different update."""


class SecretExportError(CryptoError, PermissionError):
    """Secret key material was asked for without the explicit export token."""


class ImplicitSerializationError(CryptoError, TypeError):
    """A key handle was pickled: keys leave a process only through a scheme's ``dump_key``."""
