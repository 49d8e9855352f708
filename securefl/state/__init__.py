"""Durable state: everything securefl keeps on disk across a restart, written by one atomic writer.

:mod:`~securefl.state.atomic` (the one write: temporary file in the same directory, fsync, ``os.replace``,
directory fsync), :mod:`~securefl.state.checkpoint` (the round engine's checkpoint),
:mod:`~securefl.state.keystore` (the authority's key store) and :mod:`~securefl.state.partystate` (a party's
answered rounds and spent budget, the authority's policy record).
"""
