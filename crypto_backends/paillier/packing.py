"""Many non-negative slot values per Paillier plaintext, packed with numpy bit operations.

A plaintext holds ``k`` slots of ``b`` bits each, slot 0 in the most significant
position: ``m = sum_j v_j * 2^(b * (k - 1 - j))``.  Since ``k * b <= bits(n) - 1``,
``m < n``, and the slot-wise sum of aggregated plaintexts stays below ``n`` as long
as every slot sum stays below ``2^b`` (the caller sizes ``b`` for that).

Packing goes through one bit matrix (``np.unpackbits`` / ``np.packbits``) and one
``int.from_bytes`` per plaintext, never a Python loop per value.  Unpacking checks
that no bit is set above the top slot, which is where a carry out of slot 0 lands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gmpy2 import mpz

from ..errors import DecodingOverflowError


@dataclass(frozen=True)
class SlotLayout:
    """``slots`` slots of ``slot_bits`` bits per plaintext."""

    slot_bits: int
    slots: int

    @property
    def plaintext_bytes(self) -> int:
        """Bytes of one packed plaintext: every slot's bits, rounded up to whole bytes."""
        return (self.slot_bits * self.slots + 7) // 8

    @property
    def _pad_bits(self) -> int:
        return 8 * self.plaintext_bytes - self.slot_bits * self.slots

    def count(self, length: int) -> int:
        """Plaintexts needed for ``length`` values."""
        return -(-length // self.slots)

    def pack(self, values: np.ndarray) -> list[mpz]:
        """Pack uint64 ``values`` (each below ``2**slot_bits``) into plaintexts; the last is zero-padded."""
        b, k = self.slot_bits, self.slots
        count = self.count(values.size)
        padded = np.zeros(count * k, dtype=">u8")
        padded[: values.size] = values
        bits = np.unpackbits(padded.view(np.uint8).reshape(-1, 8), axis=1)[:, 64 - b:]
        rows = bits.reshape(count, k * b)
        if self._pad_bits:
            rows = np.concatenate([np.zeros((count, self._pad_bits), np.uint8), rows], axis=1)
        data = np.packbits(rows, axis=1).tobytes()
        width = self.plaintext_bytes
        return [mpz(int.from_bytes(data[i * width:(i + 1) * width], "big")) for i in range(count)]

    def unpack(self, plaintexts: list[mpz], length: int) -> np.ndarray:
        """Slot values (uint64) of ``plaintexts``; the first ``length`` are returned.

        Raises :class:`DecodingOverflowError` when a plaintext has bits above its top
        slot or a padding slot is not zero: the sum carried out of its slots.
        """
        b, k, width = self.slot_bits, self.slots, self.plaintext_bytes
        if any(m.bit_length() > k * b for m in plaintexts):
            raise _overflow()
        data = b"".join(int(m).to_bytes(width, "big") for m in plaintexts)
        rows = np.unpackbits(np.frombuffer(data, np.uint8).reshape(len(plaintexts), width), axis=1)
        slots = rows[:, self._pad_bits:].reshape(-1, b)
        wide = np.concatenate([np.zeros((slots.shape[0], 64 - b), np.uint8), slots], axis=1)
        values = np.packbits(wide, axis=1).view(">u8").ravel().astype(np.uint64)
        if values[length:].any():
            raise _overflow()
        return values[:length]


def _overflow() -> DecodingOverflowError:
    return DecodingOverflowError(
        "the aggregate carried out of its slots: more updates were combined than the slots were "
        "sized for, or an upload was not made by an honest party. Raise max_parties or lower bits"
    )
