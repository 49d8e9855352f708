"""The one error hierarchy of securefl.

Every error raised on purpose by ``crypto_backends`` or ``securefl`` derives from
:class:`SecureFLError`, so a caller can catch the whole family in one clause.
Where a Python built-in names the same category (a wrong value, a wrong type) the
error derives from it too, so generic ``except ValueError`` handlers keep working.

Messages say what is wrong *and* what to do instead.  Decryption failures say no
more than that: they must not become an oracle about the secret.
"""

from __future__ import annotations


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


class KeyMismatchError(CryptoError):
    """A ciphertext was made under another key (its fingerprint differs)."""


class SchemeMismatchError(CryptoError):
    """A ciphertext belongs to another scheme or format version."""


class RoundMismatchError(CryptoError):
    """A ciphertext or function key belongs to another round."""


class MalformedCiphertextError(CryptoError, ValueError):
    """Serialized bytes are truncated, garbled, or structurally invalid."""


class LengthMismatchError(MalformedCiphertextError):
    """A ciphertext holds another number of values (or chunks, or slots) than expected."""


class DecodingOverflowError(CryptoError, ArithmeticError):
    """A decoded aggregate left the range its encoding can represent.

    Raised instead of silently wrapping around; the fix is more headroom (fewer
    parties per aggregate, smaller weights, fewer bits per value, wider slots).
    """


class ShareError(CryptoError):
    """A decryption or unmasking share, or a setup message, failed its check (forged, replayed, misrouted).

    The engine names the sender in the round's ``dropped`` and goes on with the
    other shares when enough valid ones remain.
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
