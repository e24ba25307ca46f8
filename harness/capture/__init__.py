"""Captures from any tool read back as timeline events (``harness trace pcap``).

- :mod:`harness.capture.packets`: pcap and pcapng files down to TCP and UDP segments.
- :mod:`harness.capture.streams`: TCP connections reassembled, each side's bytes in order.
- :mod:`harness.capture.tls`: TLS 1.2 and 1.3 records decrypted with an NSS key log.
- :mod:`harness.capture.websocket`: WebSocket handshakes and messages (OCPP-J).
- :mod:`harness.capture.decode`: all of it as SLAC, SDP, V2G and OCPP events, the way the
  harness's own observers record them.

Everything but the file reading is sans-IO: bytes in, records out.
"""
