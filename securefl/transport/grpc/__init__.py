"""The networked deployment: key authority, aggregator and parties as separate processes.

gRPC with mutual TLS against a federation's private CA; explicit framing (never
pickle); payloads streamed in chunks.  Modules:

* :mod:`.certs` - the CA and each member's certificate; identities from certificates
* :mod:`.wire` - frames: JSON control headers with fixed fields, chunked payloads
* :mod:`.channels` - servers and channels with mTLS, the caller's identity, back-off
* :mod:`.authority_server` - the authority serving each role its own key
* :mod:`.aggregator_server` - the aggregator's service and round loop
* :mod:`.checkpoint` - the aggregator's atomic checkpoint
* :mod:`.clients` - what parties and the aggregator call
* :mod:`.party_client` - a party's process

The roles themselves (:class:`~securefl.core.party.Party`,
:class:`~securefl.core.aggregator.Aggregator`, :class:`~securefl.core.authority.Authority`)
are the ones the in-process simulation uses; this package only moves their
bytes between processes.
"""
