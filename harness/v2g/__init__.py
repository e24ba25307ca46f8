"""ISO 15118 communication: V2GTP, SDP, the supportedAppProtocol handshake and the EVCC and SECC
session machines of DIN 70121, ISO 15118-2 and ISO 15118-20.

Sans-IO cores (:mod:`v2gtp`, :mod:`sdp`'s client, :mod:`session` with the per-protocol rules in
:mod:`din`, :mod:`iso2`, :mod:`iso20`) take bytes and time and return events; the asyncio
adapters (:mod:`transport`, :mod:`secc`, :mod:`evcc`, :mod:`sdp`'s server and :func:`sdp.discover`)
move the bytes, apply fault plans (:mod:`faults`) and record everything on the timeline
(:mod:`recording`). Timers live in :mod:`timers`, one table per protocol.
"""
